"""NHS numbers, the one module client, service and UI use: validation, judging typed input, normalisation,
3-3-4 display, and synthetic numbers for test data.

An NHS number is ten digits; the tenth is a modulus-11 check digit over the first nine (weights 10 down to 2;
a result of 11 becomes 0 and a result of 10 means the nine digits can never form a valid number). The check
itself is delegated to the ``nhs-number`` package (the one NHS England's PDS specification points to).

Synthetic numbers come from the block the NHS never issues to real people: 9000000000-9999999999 ("Not to be
issued (Synthetic/test patients PDS)" in ``nhs_number.constants``). We use its top part, 9700000000 upwards, so
they never collide with NHS's own sandbox reference patients (9000000009, 9000000025, 9000000033, ...).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

import nhs_number as _nhs

from app.protocol import NHS_NUMBER_SYSTEM

__all__ = ["NHS_NUMBER_SYSTEM", "NhsCheck", "NhsInput", "check_digit", "check_input", "display", "format_nhs_number",
           "is_synthetic", "is_valid", "normalise", "synthetic", "synthetic_numbers"]

_TEN_DIGITS = re.compile(r"[0-9]{10}")
# Separators people type or paste: whitespace of any kind and the hyphen/dash family.
_SEPARATORS = re.compile(r"[\s\-\u2010\u2011\u2012\u2013\u2014\u2212]+")

# Synthetic block: 8-digit stems 97000000..99999999, nine usable numbers per stem (see ``synthetic``).
_SYNTHETIC_FIRST_STEM = 97_000_000
_SYNTHETIC_LAST_STEM = 99_999_999
SYNTHETIC_CAPACITY = (_SYNTHETIC_LAST_STEM - _SYNTHETIC_FIRST_STEM + 1) * 9
SYNTHETIC_FIRST = _SYNTHETIC_FIRST_STEM * 100
SYNTHETIC_LAST = 9_999_999_999


def check_digit(first_nine: str) -> int | None:
    """The modulus-11 check digit for nine digits, or ``None`` when it would be 10 (no valid number exists)."""
    if len(first_nine) != 9 or not first_nine.isascii() or not first_nine.isdigit():
        raise ValueError("check_digit needs exactly nine ASCII digits")
    digit = _nhs.calculate_checksum(first_nine)
    return None if digit == 10 else digit


def is_valid(value: object) -> bool:
    """True only for exactly ten ASCII digits with a correct check digit (no spaces, no signs, not 0000000000).

    Use this on identifiers from URLs and resources; use ``normalise`` first for anything a person typed.
    """
    if not isinstance(value, str) or _TEN_DIGITS.fullmatch(value) is None:
        return False
    if int(value) < _nhs.FULL_RANGE.start:  # "0000000000" passes the arithmetic but is not a number
        return False
    return bool(_nhs.is_valid(value))


def normalise(text: object) -> str | None:
    """Turn what a person typed ("943 476 5919", "943-476-5919", " 9434765919 ") into ten digits.

    Returns ``None`` unless the result is exactly ten ASCII digits. It does not check the check digit: call
    ``is_valid`` on the result (so a caller can tell "not a number" from "mistyped number").
    """
    if not isinstance(text, str) or len(text) > 40:
        return None
    digits = _SEPARATORS.sub("", text)
    return digits if _TEN_DIGITS.fullmatch(digits) else None


def format_nhs_number(value: str) -> str:
    """The NHS display format, 3-3-4 with spaces: "9434765919" -> "943 476 5919"."""
    digits = normalise(value)
    if digits is None:
        raise ValueError(f"not an NHS number: {value!r}")
    return f"{digits[:3]} {digits[3:6]} {digits[6:]}"


def display(value: str) -> str:
    """For showing to people: 3-3-4 when ``value`` is ten digits (spaces ignored), otherwise ``value`` unchanged."""
    digits = "".join(ch for ch in value if not ch.isspace())
    if len(digits) != 10 or not (digits.isascii() and digits.isdigit()):
        return value
    return f"{digits[:3]} {digits[3:6]} {digits[6:]}"


def synthetic(index: int) -> str:
    """The ``index``-th synthetic NHS number (0 <= index < SYNTHETIC_CAPACITY), always valid, never reissued.

    Every 8-digit stem has ten possible ninth digits; their weighted sums differ by 2 (mod 11), so at most one
    of the ten makes the check digit 10. We therefore take exactly nine per stem: index // 9 picks the stem and
    index % 9 the k-th usable ninth digit. Deterministic, O(1), and distinct indices give distinct numbers.
    """
    if not 0 <= index < SYNTHETIC_CAPACITY:
        raise ValueError(f"synthetic index out of range 0..{SYNTHETIC_CAPACITY - 1}: {index}")
    stem_value, k = divmod(index, 9)
    stem = str(_SYNTHETIC_FIRST_STEM + stem_value)
    partial = sum(int(ch) * weight for ch, weight in zip(stem, range(10, 2, -1), strict=True))
    for ninth in range(10):
        check = 11 - (partial + 2 * ninth) % 11
        if check == 10:
            continue
        if k == 0:
            return f"{stem}{ninth}{0 if check == 11 else check}"
        k -= 1
    raise AssertionError("unreachable: every stem has at least nine usable ninth digits")


def synthetic_numbers(start: int = 0) -> Iterator[str]:
    """``synthetic(start)``, ``synthetic(start + 1)``, ... as a fast iterator (one weighted sum per stem)."""
    if not 0 <= start < SYNTHETIC_CAPACITY:
        raise ValueError(f"synthetic index out of range 0..{SYNTHETIC_CAPACITY - 1}: {start}")
    stem_value, skip = divmod(start, 9)
    for stem_number in range(_SYNTHETIC_FIRST_STEM + stem_value, _SYNTHETIC_LAST_STEM + 1):
        stem = str(stem_number)
        partial = sum(int(ch) * weight for ch, weight in zip(stem, range(10, 2, -1), strict=True))
        usable = [f"{stem}{ninth}{check % 11}" for ninth in range(10)
                  if (check := 11 - (partial + 2 * ninth) % 11) != 10]
        yield from usable[skip:9]
        skip = 0


def is_synthetic(value: str) -> bool:
    """True for valid numbers in the block ``synthetic`` draws from."""
    return is_valid(value) and SYNTHETIC_FIRST <= int(value) <= SYNTHETIC_LAST


class NhsInput(Enum):
    """What a person has typed into an NHS number field so far."""

    EMPTY = "empty"
    INCOMPLETE = "incomplete"  # only digits so far, fewer than ten
    NOT_DIGITS = "not_digits"
    TOO_LONG = "too_long"
    CHECK_DIGIT = "check_digit"  # ten digits failing the modulus 11 check
    VALID = "valid"


_MESSAGES = {
    NhsInput.EMPTY: "",
    NhsInput.INCOMPLETE: "An NHS number has 10 digits.",
    NhsInput.NOT_DIGITS: "An NHS number contains only digits (spaces are allowed).",
    NhsInput.TOO_LONG: "An NHS number has 10 digits; this has more.",
    NhsInput.CHECK_DIGIT: "This is not a valid NHS number: its check digit is wrong. Check for a mistyped digit.",
    NhsInput.VALID: "Valid NHS number.",
}


@dataclass(frozen=True, slots=True)
class NhsCheck:
    """One verdict on typed input, with the digits typed (spaces removed)."""

    state: NhsInput
    digits: str

    @property
    def valid(self) -> bool:
        return self.state is NhsInput.VALID

    @property
    def message(self) -> str:
        """What to tell the person typing (empty when there is nothing to say yet)."""
        return _MESSAGES[self.state]


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
