"""NHS number input: spaces, modulus 11, and what the person typing is told."""

from __future__ import annotations

import pytest

from app.nhs_number import NhsInput, check_digit, check_input, is_valid


@pytest.mark.parametrize(("typed", "state", "digits"), [
    ("", NhsInput.EMPTY, ""),
    ("   ", NhsInput.EMPTY, ""),
    ("943", NhsInput.INCOMPLETE, "943"),
    ("943 476", NhsInput.INCOMPLETE, "943476"),
    ("9434765919", NhsInput.VALID, "9434765919"),
    ("943 476 5919", NhsInput.VALID, "9434765919"),
    (" 943  4765919 ", NhsInput.VALID, "9434765919"),
    ("9434765918", NhsInput.CHECK_DIGIT, "9434765918"),
    ("9000000000", NhsInput.CHECK_DIGIT, "9000000000"),  # NHS's own invalid example
    ("94347659190", NhsInput.TOO_LONG, "94347659190"),
    ("943-476-5919", NhsInput.NOT_DIGITS, "943-476-5919"),
    ("94347\uff165919", NhsInput.NOT_DIGITS, "94347\uff165919"),  # full-width digits are not ASCII digits
])
def test_check_input(typed, state, digits):
    check = check_input(typed)
    assert (check.state, check.digits) == (state, digits)
    assert check.valid is (state is NhsInput.VALID)


def test_messages_say_what_is_wrong():
    assert "check digit" in check_input("9434765918").message
    assert check_input("").message == ""
    assert "10 digits" in check_input("12").message


def test_modulus_11_rules():
    assert check_digit("943476591") == 9
    assert is_valid("9000000009") and is_valid("9000000017") and is_valid("9000000025")
    # a remainder giving 11 means check digit 0; a 10 means no valid number exists for those nine digits (searched
    # in the England range: numbers in the Scottish CHI range must also start with a real date)
    nine_with_ten = next(f"{n:09d}" for n in range(4 * 10**8, 4 * 10**8 + 1000) if check_digit(f"{n:09d}") is None)
    assert not any(is_valid(nine_with_ten + str(d)) for d in range(10))
    zero = next(f"{n:09d}" for n in range(4 * 10**8, 4 * 10**8 + 1000) if check_digit(f"{n:09d}") == 0)
    assert is_valid(zero + "0")
