"""NHS numbers as people type them: spaces allowed, modulus 11 checked, one verdict with the reason."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)


class NhsInput(Enum):
    EMPTY = "empty"
    INCOMPLETE = "incomplete"  # only digits so far, fewer than ten
    NOT_DIGITS = "not_digits"
    TOO_LONG = "too_long"
    CHECK_DIGIT = "check_digit"  # ten digits failing the modulus 11 check
    VALID = "valid"


@dataclass(frozen=True, slots=True)
class NhsCheck:
    state: NhsInput
    digits: str  # the digits typed, spaces removed

    @property
    def valid(self) -> bool:
        return self.state is NhsInput.VALID

    @property
    def message(self) -> str:
        """What to tell the person typing (empty when there is nothing to say yet)."""
        return _MESSAGES[self.state]


_MESSAGES = {
    NhsInput.EMPTY: "",
    NhsInput.INCOMPLETE: "An NHS number has 10 digits.",
    NhsInput.NOT_DIGITS: "An NHS number contains only digits (spaces are allowed).",
    NhsInput.TOO_LONG: "An NHS number has 10 digits; this has more.",
    NhsInput.CHECK_DIGIT: "This is not a valid NHS number: its check digit is wrong. Check for a mistyped digit.",
    NhsInput.VALID: "Valid NHS number.",
}


def check_digit(first_nine: str) -> int | None:
    """The modulus 11 check digit for nine digits (weights 10..2; 11 -> 0); ``None`` when it would be 10."""
    total = sum(int(d) * w for d, w in zip(first_nine, _WEIGHTS, strict=True))
    digit = 11 - total % 11
    if digit == 11:
        return 0
    return None if digit == 10 else digit


def is_valid(number: str) -> bool:
    return len(number) == 10 and number.isdigit() and check_digit(number[:9]) == int(number[9])


def check_input(text: str) -> NhsCheck:
    """Judge what has been typed so far (spaces, including the 3-3-4 grouping, are ignored)."""
    digits = "".join(ch for ch in text if not ch.isspace())
    if not digits:
        return NhsCheck(NhsInput.EMPTY, "")
    if not (digits.isascii() and digits.isdigit()):
        return NhsCheck(NhsInput.NOT_DIGITS, digits)
    if len(digits) < 10:
        return NhsCheck(NhsInput.INCOMPLETE, digits)
    if len(digits) > 10:
        return NhsCheck(NhsInput.TOO_LONG, digits)
    return NhsCheck(NhsInput.VALID if is_valid(digits) else NhsInput.CHECK_DIGIT, digits)
