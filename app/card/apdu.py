"""ISO 7816-4 APDUs: status words, short command encoding and parsing, chaining, 61xx / 6Cxx handling."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum

from app.errors import ApduError, CardProtocolError

MAX_SHORT_DATA = 255
CLA_CHAINING = 0x10
INS_GET_RESPONSE = 0xC0


class SW(IntEnum):
    """Status words; families (61xx, 63Cx, 6Cxx) are matched with :func:`sw_family`."""

    SUCCESS = 0x9000
    BYTES_REMAINING = 0x6100  # 61xx: xx more bytes to fetch with GET RESPONSE
    VERIFY_FAILED = 0x63C0  # 63Cx: x tries left
    MEMORY_FAILURE = 0x6581
    WRONG_LENGTH = 0x6700
    CLA_FUNCTION_NOT_SUPPORTED = 0x6884
    LAST_COMMAND_OF_CHAIN_EXPECTED = 0x6883
    SECURITY_STATUS_NOT_SATISFIED = 0x6982
    AUTH_METHOD_BLOCKED = 0x6983
    CONDITIONS_NOT_SATISFIED = 0x6985
    INCORRECT_DATA = 0x6A80
    FUNCTION_NOT_SUPPORTED = 0x6A81
    FILE_NOT_FOUND = 0x6A82
    INCORRECT_P1P2 = 0x6A86
    REFERENCE_NOT_FOUND = 0x6A88
    WRONG_P1P2 = 0x6B00
    WRONG_LE = 0x6C00  # 6Cxx: resend with Le = xx
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00
    NO_PRECISE_DIAGNOSIS = 0x6F00


_FAMILIES = {0x61: SW.BYTES_REMAINING, 0x6C: SW.WRONG_LE}


def sw_family(sw: int) -> SW | None:
    """The named status word or family for ``sw``; ``None`` for codes we do not know (never an exception)."""
    if sw >> 8 in _FAMILIES:
        return _FAMILIES[sw >> 8]
    if sw & 0xFFF0 == 0x63C0:
        return SW.VERIFY_FAILED
    try:
        return SW(sw)
    except ValueError:
        return None


def describe_sw(sw: int) -> str:
    family = sw_family(sw)
    return f"{sw:04X} ({family.name.lower()})" if family else f"{sw:04X} (unknown)"


@dataclass(frozen=True, slots=True)
class CommandApdu:
    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = field(default=b"", repr=False)  # never in a repr: VERIFY/CHANGE/RESET data is a PIN
    le: int | None = None  # None: no Le field; 0..256 (0 and 256 both mean "up to 256")

    def encode(self) -> bytes:
        """Short APDU encoding (cases 1-4)."""
        for name in ("cla", "ins", "p1", "p2"):
            if not 0 <= getattr(self, name) <= 0xFF:
                raise ValueError(f"{name} out of range")
        if len(self.data) > MAX_SHORT_DATA:
            raise ValueError("data longer than a short APDU; use chain()")
        out = bytes([self.cla, self.ins, self.p1, self.p2])
        if self.data:
            out += bytes([len(self.data)]) + self.data
        if self.le is not None:
            if not 0 <= self.le <= 256:
                raise ValueError("Le out of range")
            out += bytes([self.le & 0xFF])
        return out

    @classmethod
    def parse(cls, raw: bytes) -> CommandApdu:
        """Parse a short command APDU; raises :class:`CardProtocolError` on anything malformed."""
        raw = bytes(raw)
        if len(raw) < 4:
            raise CardProtocolError(f"command APDU of {len(raw)} bytes is shorter than its header")
        cla, ins, p1, p2 = raw[:4]
        body = raw[4:]
        if not body:
            return cls(cla, ins, p1, p2)
        if len(body) == 1:
            return cls(cla, ins, p1, p2, le=body[0] or 256)
        if body[0] == 0:
            raise CardProtocolError("extended-length APDUs are not supported")
        lc = body[0]
        if len(body) == 1 + lc:
            return cls(cla, ins, p1, p2, body[1:])
        if len(body) == 2 + lc:
            return cls(cla, ins, p1, p2, body[1 : 1 + lc], le=body[-1] or 256)
        raise CardProtocolError(f"command APDU Lc={lc} does not match its {len(body) - 1} data bytes")

    @property
    def chained(self) -> bool:
        return bool(self.cla & CLA_CHAINING)


def chain(cmd: CommandApdu, max_len: int = MAX_SHORT_DATA) -> list[CommandApdu]:
    """Split a command whose data exceeds a short APDU into ISO command chaining parts (CLA bit 0x10)."""
    if len(cmd.data) <= max_len:
        return [cmd]
    parts = [cmd.data[i : i + max_len] for i in range(0, len(cmd.data), max_len)]
    out = [CommandApdu(cmd.cla | CLA_CHAINING, cmd.ins, cmd.p1, cmd.p2, p) for p in parts[:-1]]
    out.append(CommandApdu(cmd.cla, cmd.ins, cmd.p1, cmd.p2, parts[-1], cmd.le))
    return out


def split_response(raw: bytes) -> tuple[bytes, int]:
    raw = bytes(raw)
    if len(raw) < 2:
        raise CardProtocolError(f"response of {len(raw)} bytes has no status word")
    return raw[:-2], (raw[-2] << 8) | raw[-1]


def encode_response(data: bytes, sw: int) -> bytes:
    return bytes(data) + sw.to_bytes(2, "big")


Transmit = Callable[[bytes], tuple[bytes, int]]


@dataclass
class Exchange:
    """Sends one logical command over a raw transmit function: chaining out, 61xx/6Cxx in.

    ``max_response`` bounds how much a card may stream back through GET RESPONSE (a malfunctioning card
    that answers 61xx for ever must not hang us).
    """

    transmit: Transmit
    max_response: int = 64 * 1024
    sent: list[bytes] = field(default_factory=list, repr=False)

    def __call__(self, cmd: CommandApdu) -> tuple[bytes, int]:
        data, sw = b"", int(SW.SUCCESS)
        for part in chain(cmd):
            data, sw = self._send(part)
            if part.chained and sw != SW.SUCCESS:
                return data, sw  # the card refused a chained part: stop, report it
        buf = bytearray(data)
        while sw >> 8 == 0x61:
            if len(buf) > self.max_response:
                raise CardProtocolError("card kept answering 61xx beyond any sane response length")
            more, sw = self._send(CommandApdu(cmd.cla & ~CLA_CHAINING, INS_GET_RESPONSE, 0, 0, le=(sw & 0xFF) or 256))
            buf += more
        return bytes(buf), sw

    def _send(self, cmd: CommandApdu) -> tuple[bytes, int]:
        data, sw = self.transmit(cmd.encode())
        if sw >> 8 == 0x6C:  # wrong Le: the card tells us the right one; resend once with it
            fixed = CommandApdu(cmd.cla, cmd.ins, cmd.p1, cmd.p2, cmd.data, le=(sw & 0xFF) or 256)
            data, sw = self.transmit(fixed.encode())
        return data, sw


def check(sw: int, command: str) -> None:
    if sw != SW.SUCCESS:
        raise ApduError(sw, command)
