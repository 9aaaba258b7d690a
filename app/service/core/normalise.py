"""Normalisation and matching of names and postcodes, shared by search, ranking and the store's index columns.

* ``name_key``: Unicode NFKD folding of accents (plus the Latin letters that do not decompose, such as ß and Ø),
  upper case, letters A-Z only. "O'Neill" -> "ONEILL", "Kociński" -> "KOCINSKI", "Smith-Jones" -> "SMITHJONES".
* ``postcode_key``: upper case without spaces. "ls1 6ae" -> "LS16AE".
* ``soundex``: American Soundex (the algorithm NHS's PDS documents for its fuzzy search: "matches common
  homophones, such as Smith and Smythe, using the Soundex algorithm"). Letter, then three digits; letters with
  the same code separated only by H or W collapse; vowels separate. Empty input gives "".
* ``jaro_winkler``: similarity in 0..1 (Winkler's prefix bonus 0.1 per common leading letter, up to four).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Latin letters NFKD leaves alone: fold them by hand so "Øyvind" and "Straße" index sensibly.
_SPECIAL = str.maketrans({
    "ß": "SS", "ẞ": "SS", "Æ": "AE", "æ": "AE", "Œ": "OE", "œ": "OE", "Ø": "O", "ø": "O", "Ł": "L", "ł": "L",
    "Đ": "D", "đ": "D", "Ð": "D", "ð": "D", "Þ": "TH", "þ": "TH", "\u0131": "I", "Ħ": "H", "ħ": "H", "Ŋ": "NG",
    "ŋ": "NG", "ĸ": "K", "Ŀ": "L", "ŀ": "L", "Ŧ": "T", "ŧ": "T",
})
_NOT_A_TO_Z = re.compile(r"[^A-Z]+")
_NOT_ALNUM = re.compile(r"[^A-Z0-9]+")
_POSTCODE_TEXT = re.compile(r" *[A-Za-z0-9]+(?: +[A-Za-z0-9]+)? *")
_POSTCODE = re.compile(r"[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][A-Z]{2}")

_SOUNDEX_CODES = {
    **dict.fromkeys("BFPV", "1"), **dict.fromkeys("CGJKQSXZ", "2"), **dict.fromkeys("DT", "3"), "L": "4",
    **dict.fromkeys("MN", "5"), "R": "6",
}


def fold(text: str) -> str:
    """Accents folded and upper-cased, everything else kept: "Zoë O'Brien" -> "ZOE O'BRIEN"."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_SPECIAL))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).upper()


@lru_cache(maxsize=65_536)
def name_key(text: str) -> str:
    """The comparable form of a name: folded, upper case, letters A-Z only."""
    return _NOT_A_TO_Z.sub("", fold(text))


def postcode_key(text: str | None) -> str | None:
    """Upper case, spaces and punctuation removed; ``None`` for nothing. "ls1 6ae" -> "LS16AE"."""
    if not text:
        return None
    key = _NOT_ALNUM.sub("", text.upper())
    return key or None


def is_postcode(text: str) -> bool:
    """A full UK postcode in any spacing or case (shape only: "LS1 6AE", "sw1a1aa", "ZZ99 3VZ")."""
    if not isinstance(text, str) or _POSTCODE_TEXT.fullmatch(text) is None:
        return False
    key = postcode_key(text)
    return key is not None and _POSTCODE.fullmatch(key) is not None


def format_postcode(text: str) -> str:
    """The usual written form, outward code + space + inward code: "ls16ae" -> "LS1 6AE"."""
    key = postcode_key(text) or ""
    return f"{key[:-3]} {key[-3:]}" if len(key) > 3 else key


@lru_cache(maxsize=65_536)
def soundex(text: str) -> str:
    """American Soundex of a name ("Smith" and "Smythe" -> "S530"); "" when the name has no letters."""
    key = name_key(text)
    if not key:
        return ""
    out = [key[0]]
    previous = _SOUNDEX_CODES.get(key[0], "")
    for ch in key[1:]:
        code = _SOUNDEX_CODES.get(ch, "")
        if code:
            if code != previous:
                out.append(code)
                if len(out) == 4:
                    break
            previous = code
        elif ch not in "HW":  # vowels (and Y) separate equal codes; H and W do not
            previous = ""
    return "".join(out).ljust(4, "0")


def jaro_winkler(a: str, b: str, prefix_scale: float = 0.1) -> float:
    """Jaro-Winkler similarity of two strings, 1.0 for equal strings and 0.0 when nothing matches."""
    if a == b:
        return 1.0
    len_a, len_b = len(a), len(b)
    if not len_a or not len_b:
        return 0.0
    window = max(max(len_a, len_b) // 2 - 1, 0)
    matched_b = [False] * len_b
    matches_a: list[str] = []
    for i, ch in enumerate(a):
        for j in range(max(0, i - window), min(len_b, i + window + 1)):
            if not matched_b[j] and b[j] == ch:
                matched_b[j] = True
                matches_a.append(ch)
                break
    m = len(matches_a)
    if not m:
        return 0.0
    matches_b = [b[j] for j in range(len_b) if matched_b[j]]
    transpositions = sum(x != y for x, y in zip(matches_a, matches_b, strict=True)) // 2
    jaro = (m / len_a + m / len_b + (m - transpositions) / m) / 3
    prefix = 0
    for x, y in zip(a[:4], b[:4], strict=False):
        if x != y:
            break
        prefix += 1
    return jaro + prefix * prefix_scale * (1 - jaro)


def name_similarity(a: str, b: str) -> float:
    """Jaro-Winkler over the normalised forms, so case, accents and punctuation never cost anything."""
    return jaro_winkler(name_key(a), name_key(b))
