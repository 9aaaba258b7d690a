"""BER-TLV as used by PIV (SP 800-73-4 / ISO 7816-4): multi-byte tags, short and long definite lengths."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from app.errors import CardProtocolError


class TlvError(CardProtocolError):
    """Malformed BER-TLV."""


@dataclass(frozen=True, slots=True)
class Tlv:
    tag: int
    value: bytes

    def encode(self) -> bytes:
        return encode_tlv(self.tag, self.value)


def encode_tag(tag: int) -> bytes:
    if tag < 0:
        raise ValueError("negative tag")
    return tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")


def encode_length(length: int) -> bytes:
    if length < 0:
        raise ValueError("negative length")
    if length < 0x80:
        return bytes([length])
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    if len(body) > 3:
        raise ValueError("length too large for BER-TLV here")
    return bytes([0x80 | len(body)]) + body


def encode_tlv(tag: int, value: bytes) -> bytes:
    return encode_tag(tag) + encode_length(len(value)) + bytes(value)


def _read_tag(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise TlvError("TLV truncated before its tag")
    first = data[pos]
    tag = first
    pos += 1
    if first & 0x1F == 0x1F:  # multi-byte tag: continuation bytes have bit 8 set, the last one clear
        while True:
            if pos >= len(data):
                raise TlvError("TLV truncated inside a multi-byte tag")
            byte = data[pos]
            tag = (tag << 8) | byte
            pos += 1
            if tag > 0xFFFFFFFF:
                raise TlvError("TLV tag longer than 4 bytes")
            if not byte & 0x80:
                break
    return tag, pos


def _read_length(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise TlvError("TLV truncated before its length")
    first = data[pos]
    pos += 1
    if first < 0x80:
        return first, pos
    count = first & 0x7F
    if count == 0 or count > 3:
        raise TlvError(f"unsupported TLV length form {first:02X}")
    if pos + count > len(data):
        raise TlvError("TLV truncated inside its length")
    return int.from_bytes(data[pos : pos + count], "big"), pos + count


def iter_tlvs(data: bytes) -> Iterator[Tlv]:
    """Yield the TLVs at one level of ``data``; raises :class:`TlvError` on any malformation."""
    pos = 0
    data = bytes(data)
    while pos < len(data):
        tag, pos = _read_tag(data, pos)
        length, pos = _read_length(data, pos)
        end = pos + length
        if end > len(data):
            raise TlvError(f"TLV {tag:X} claims {length} bytes but only {len(data) - pos} remain")
        yield Tlv(tag, data[pos:end])
        pos = end


def parse_tlvs(data: bytes) -> list[Tlv]:
    return list(iter_tlvs(data))


def parse_single(data: bytes, tag: int | None = None) -> Tlv:
    """Parse exactly one TLV (optionally requiring its tag); trailing bytes are an error."""
    items = parse_tlvs(data)
    if len(items) != 1:
        raise TlvError(f"expected one TLV, found {len(items)}")
    if tag is not None and items[0].tag != tag:
        raise TlvError(f"expected tag {tag:X}, found {items[0].tag:X}")
    return items[0]


def tlv_map(data: bytes) -> dict[int, bytes]:
    """Tags to values at one level; the first occurrence of a tag wins."""
    result: dict[int, bytes] = {}
    for item in iter_tlvs(data):
        result.setdefault(item.tag, item.value)
    return result
