import pytest

from app.card.tlv import TlvError, encode_length, encode_tag, encode_tlv, parse_single, parse_tlvs, tlv_map


@pytest.mark.parametrize(("length", "encoded"), [
    (0, "00"), (0x7F, "7f"), (0x80, "8180"), (0xFF, "81ff"), (0x100, "820100"), (0x1234, "821234"),
    (0x10000, "83010000"),
])
def test_length_forms(length, encoded):
    assert encode_length(length).hex() == encoded


@pytest.mark.parametrize(("tag", "encoded"), [(0x53, "53"), (0x5FC105, "5fc105"), (0x7F49, "7f49")])
def test_tag_encoding(tag, encoded):
    assert encode_tag(tag).hex() == encoded


def test_multi_byte_tag_roundtrip_and_nesting():
    inner = encode_tlv(0x5C, bytes.fromhex("5fc105"))
    data = encode_tlv(0x5FC105, b"\x01" * 300) + encode_tlv(0x7C, inner)
    items = parse_tlvs(data)
    assert [i.tag for i in items] == [0x5FC105, 0x7C]
    assert items[0].value == b"\x01" * 300
    assert parse_single(items[1].value, 0x5C).value == bytes.fromhex("5fc105")


def test_piv_certificate_object_vector():
    # 53 {70 <3 bytes>, 71 01 00, FE 00} as a card sends it
    data = bytes.fromhex("530a7003aabbcc710100fe00")
    value = parse_single(data, 0x53).value
    assert tlv_map(value) == {0x70: b"\xaa\xbb\xcc", 0x71: b"\x00", 0xFE: b""}


def test_first_occurrence_wins():
    assert tlv_map(bytes.fromhex("010101010102")) == {1: b"\x01"}


@pytest.mark.parametrize("bad", [
    "5f",            # multi-byte tag cut short
    "53",            # no length
    "5305aabb",      # claims 5, has 2
    "5384000000ff",  # 4-byte length form unsupported
    "5380",          # indefinite length
    "538201",        # length cut short
    "5f8181810100",  # five-byte tag
])
def test_malformed_tlv_is_a_typed_error(bad):
    with pytest.raises(TlvError):
        parse_tlvs(bytes.fromhex(bad))


def test_parse_single_rejects_trailing_data_and_wrong_tag():
    with pytest.raises(TlvError):
        parse_single(bytes.fromhex("5300" "5300"))
    with pytest.raises(TlvError, match="expected tag 7C"):
        parse_single(bytes.fromhex("5300"), 0x7C)
