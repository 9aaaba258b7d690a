import pytest

from app.card.apdu import SW, CommandApdu, Exchange, chain, describe_sw, split_response, sw_family
from app.errors import CardProtocolError


@pytest.mark.parametrize(("cmd", "encoded"), [
    (CommandApdu(0x00, 0x20, 0x00, 0x80), "00200080"),                                  # case 1
    (CommandApdu(0x00, 0xC0, 0x00, 0x00, le=0x10), "00c0000010"),                        # case 2
    (CommandApdu(0x00, 0xC0, 0x00, 0x00, le=256), "00c0000000"),                         # case 2, Le=256
    (CommandApdu(0x00, 0x20, 0x00, 0x80, b"1234\xff\xff\xff\xff"), "002000800831323334ffffffff"),  # case 3
    (CommandApdu(0x00, 0xA4, 0x04, 0x00, bytes.fromhex("a000000308"), le=0), "00a4040005a00000030800"),  # case 4
])
def test_encode_and_parse_roundtrip(cmd, encoded):
    assert cmd.encode().hex() == encoded
    parsed = CommandApdu.parse(bytes.fromhex(encoded))
    assert parsed.encode().hex() == encoded


@pytest.mark.parametrize("bad", ["", "00a4", "00a40400", "00a4040005a000", "00a40400000001"])
def test_malformed_commands_are_typed_errors(bad):
    raw = bytes.fromhex(bad)
    if len(raw) == 4:  # a bare header is a valid case-1 command
        assert CommandApdu.parse(raw).data == b""
        return
    with pytest.raises(CardProtocolError):
        CommandApdu.parse(raw)


def test_chain_splits_with_cla_bit_and_keeps_le_on_last():
    cmd = CommandApdu(0x00, 0x87, 0x07, 0x9A, bytes(range(256)) * 2, le=0)
    parts = chain(cmd)
    assert [p.cla for p in parts] == [0x10, 0x10, 0x00]
    assert [len(p.data) for p in parts] == [255, 255, 2]
    assert parts[-1].le == 0 and parts[0].le is None
    assert b"".join(p.data for p in parts) == cmd.data


def test_status_words_and_families():
    assert sw_family(0x9000) is SW.SUCCESS
    assert sw_family(0x6110) is SW.BYTES_REMAINING
    assert sw_family(0x63C2) is SW.VERIFY_FAILED
    assert sw_family(0x6C08) is SW.WRONG_LE
    assert sw_family(0x1234) is None  # unknown codes are wrapped, never a crash
    assert describe_sw(0x6A82) == "6A82 (file_not_found)"
    assert describe_sw(0x1234) == "1234 (unknown)"


def test_split_response_needs_a_status_word():
    assert split_response(bytes.fromhex("aa9000")) == (b"\xaa", 0x9000)
    with pytest.raises(CardProtocolError):
        split_response(b"\x90")


class Script:
    """Plays back R-APDUs for expected C-APDUs (hex), recording what was sent."""

    def __init__(self, *pairs):
        self.pairs = list(pairs)
        self.sent = []

    def __call__(self, apdu):
        self.sent.append(apdu.hex())
        expected, response = self.pairs.pop(0)
        assert apdu.hex() == expected
        return split_response(bytes.fromhex(response))


def test_exchange_follows_61xx_with_get_response():
    script = Script(("00cb3fff055c035fc10500", "aabb6103"), ("00c0000003", "ccddee9000"))
    assert Exchange(script)(CommandApdu(0x00, 0xCB, 0x3F, 0xFF, bytes.fromhex("5c035fc105"), le=0)) == (
        bytes.fromhex("aabbccddee"), 0x9000)


def test_exchange_resends_with_corrected_le_on_6cxx():
    script = Script(("00ca000000", "6c04"), ("00ca000004", "010203049000"))
    assert Exchange(script)(CommandApdu(0x00, 0xCA, 0x00, 0x00, le=0)) == (bytes.fromhex("01020304"), 0x9000)


def test_exchange_stops_when_a_chained_part_is_refused():
    data = bytes(300)
    script = Script(("10870799ff" + data[:255].hex(), "6a80"))
    assert Exchange(script)(CommandApdu(0x00, 0x87, 0x07, 0x99, data)) == (b"", 0x6A80)
    assert len(script.sent) == 1


def test_exchange_bounds_endless_61xx():
    def endless(_apdu):
        return b"\x00" * 256, 0x6100
    with pytest.raises(CardProtocolError):
        Exchange(endless, max_response=4096)(CommandApdu(0x00, 0xCB, 0x3F, 0xFF, le=0))
