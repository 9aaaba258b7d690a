"""NHS numbers: the modulus-11 rule, typed-input normalisation, 3-3-4 display and the synthetic block."""

from __future__ import annotations

import itertools

import pytest

from app import nhs_number as nn


@pytest.mark.parametrize("value", ["9000000009", "9000000017", "9000000025", "9000000033", "9434765919",
                                   "9434765870", "9111231130", "9999999999"])
def test_valid_numbers(value: str) -> None:
    assert nn.is_valid(value)


@pytest.mark.parametrize("value", [
    "9000000000",  # NHS's own "invalid NHS number" sandbox example: wrong check digit
    "9434765918", "1234567890",  # check digit 10 for 123456789: never valid
    "0000000000",  # passes the arithmetic, not a number
    "943476591", "94347659190", "943 476 5919", "943-476-5919", " 9434765919", "9434765919\n",
    "".join(chr(0xFF10 + int(d)) for d in "9434765919"),  # full-width digits: isdigit() but not ours
    "", "abcdefghij", None, 9434765919,
])
def test_invalid_numbers(value: object) -> None:
    assert not nn.is_valid(value)


def test_check_digit_rules() -> None:
    # weights 10..2 over 943476591 = 299; 299 % 11 = 2; 11 - 2 = 9
    assert nn.check_digit("943476591") == 9
    assert nn.check_digit("900000000") == 9
    assert nn.check_digit("123456789") is None  # sum 210, 210 % 11 = 1, 11 - 1 = 10: invalid
    assert nn.check_digit("000000000") == 0
    with pytest.raises(ValueError):
        nn.check_digit("12345678")


def test_check_digit_eleven_becomes_zero_and_ten_is_invalid() -> None:
    eleven = next(s for s in (f"{i:09d}" for i in range(1, 10**6)) if sum(
        int(c) * w for c, w in zip(s, range(10, 1, -1), strict=True)) % 11 == 0)
    ten = next(s for s in (f"{i:09d}" for i in range(1, 10**6)) if sum(
        int(c) * w for c, w in zip(s, range(10, 1, -1), strict=True)) % 11 == 1)
    assert nn.check_digit(eleven) == 0 and nn.is_valid(eleven + "0")
    assert nn.check_digit(ten) is None and not any(nn.is_valid(ten + str(d)) for d in range(10))


@pytest.mark.parametrize(("typed", "digits"), [
    ("943 476 5919", "9434765919"), ("943-476-5919", "9434765919"), (" 9434765919 ", "9434765919"),
    ("943\u00a0476\u00a05919", "9434765919"), ("943\u2013476\u20135919", "9434765919"),
    ("94 34 76 59 19", "9434765919"),
    ("9000000000", "9000000000"),  # normalised but still invalid: callers check is_valid
])
def test_normalise(typed: str, digits: str) -> None:
    assert nn.normalise(typed) == digits


@pytest.mark.parametrize("typed", ["943 476 591", "943/476/5919", "9434765919x", "", "x" * 100, None, 12])
def test_normalise_rejects(typed: object) -> None:
    assert nn.normalise(typed) is None


def test_format() -> None:
    assert nn.format_nhs_number("9434765919") == "943 476 5919"
    assert nn.format_nhs_number("943-476-5919") == "943 476 5919"
    with pytest.raises(ValueError):
        nn.format_nhs_number("94347")


def test_synthetic_numbers_are_valid_distinct_and_in_the_never_issued_block() -> None:
    numbers = [nn.synthetic(i) for i in range(20_000)]
    assert len(set(numbers)) == len(numbers)
    assert all(nn.is_valid(n) and nn.is_synthetic(n) for n in numbers)
    assert all(9_000_000_000 <= int(n) <= 9_999_999_999 for n in numbers)  # "Not to be issued" (nhs-number)
    assert numbers[:3] == ["9700000001", "9700000028", "9700000036"]
    assert nn.synthetic(nn.SYNTHETIC_CAPACITY - 1) == "9999999999"
    assert not nn.is_synthetic("9000000009")  # the sandbox reference patients stay clear of the block
    with pytest.raises(ValueError):
        nn.synthetic(nn.SYNTHETIC_CAPACITY)
    with pytest.raises(ValueError):
        nn.synthetic(-1)


def test_synthetic_iterator_matches_random_access() -> None:
    assert list(itertools.islice(nn.synthetic_numbers(), 3000)) == [nn.synthetic(i) for i in range(3000)]
    assert list(itertools.islice(nn.synthetic_numbers(1_234_567), 50)) == [
        nn.synthetic(i) for i in range(1_234_567, 1_234_617)]


def test_package_agrees_on_the_synthetic_block() -> None:
    import nhs_number

    assert all(nhs_number.is_valid(nn.synthetic(i), for_region=nhs_number.REGION_SYNTHETIC)
               for i in range(0, nn.SYNTHETIC_CAPACITY, 99_991))
