"""FASC-N (Federal Agency Smart Credential Number, TIG SCEPACS): 40 five-bit characters packed into 25 bytes.

Each character is a BCD digit sent least significant bit first followed by an odd-parity bit; the layout is

    SS AGENCY(4) FS SYSTEM(4) FS CREDENTIAL(6) FS CS(1) FS ICI(1) FS PI(10) OC(1) OI(4) POA(1) ES LRC

where LRC is the XOR of the 4 data bits of every earlier character. The training card's FASC-N is
plausible but belongs to no registry: agency code 9999 (the value test cards conventionally use), system
code 0001, credential number and person identifier derived from the card UUID (so a card's FASC-N is
stable), credential series 0, ICI (individual credential issue) 1, organisational category 4 ("foreign
government": an NHS card seen from the FASC-N's US federal point of view), organisational identifier 9999,
person/organisation association 1 (employee).
"""

from __future__ import annotations

import uuid

_SS, _FS, _ES = 0xB, 0xD, 0xF
FASCN_LEN = 25


def _char_bits(value: int) -> str:
    bits = "".join("1" if value >> i & 1 else "0" for i in range(4))
    return bits + ("0" if bits.count("1") % 2 else "1")


def encode_fascn(agency: str, system: str, credential: str, series: str, issue: str, person: str,
                 org_category: str, org_id: str, association: str) -> bytes:
    """Pack the FASC-N fields (digit strings of the standard widths) into 25 bytes."""
    widths = {"agency": (agency, 4), "system": (system, 4), "credential": (credential, 6),
              "series": (series, 1), "issue": (issue, 1), "person": (person, 10),
              "org_category": (org_category, 1), "org_id": (org_id, 4), "association": (association, 1)}
    for name, (text, width) in widths.items():
        if len(text) != width or not text.isascii() or not text.isdigit():
            raise ValueError(f"FASC-N {name} must be {width} digits")
    digits = [int(c) for c in agency]
    chars = [_SS, *digits, _FS, *map(int, system), _FS, *map(int, credential), _FS, int(series), _FS,
             int(issue), _FS, *map(int, person), int(org_category), *map(int, org_id), int(association), _ES]
    lrc = 0
    for c in chars:
        lrc ^= c
    chars.append(lrc)
    bits = "".join(_char_bits(c) for c in chars)
    return int(bits, 2).to_bytes(FASCN_LEN, "big")


def decode_fascn(data: bytes) -> list[int] | None:
    """The 40 character values, or ``None`` if a parity bit, the separators or the LRC are wrong."""
    if len(data) != FASCN_LEN:
        return None
    bits = bin(int.from_bytes(data, "big"))[2:].zfill(200)
    chars = []
    for i in range(0, 200, 5):
        chunk = bits[i : i + 5]
        if chunk.count("1") % 2 != 1:
            return None
        chars.append(sum(1 << k for k in range(4) if chunk[k] == "1"))
    layout = {0: _SS, 5: _FS, 10: _FS, 17: _FS, 19: _FS, 21: _FS, 38: _ES}
    if any(chars[pos] != value for pos, value in layout.items()):
        return None
    lrc = 0
    for c in chars[:39]:
        lrc ^= c
    if lrc != chars[39]:
        return None
    return chars


def fascn_is_valid(data: bytes) -> bool:
    return decode_fascn(bytes(data)) is not None


def build_fascn(card_uuid: uuid.UUID) -> bytes:
    """The training card's FASC-N for ``card_uuid`` (see the module docstring for each field)."""
    number = card_uuid.int
    credential = f"{number % 10**6:06d}"
    person = f"{number // 10**6 % 10**10:010d}"
    return encode_fascn("9999", "0001", credential, "0", "1", person, "4", "9999", "1")
