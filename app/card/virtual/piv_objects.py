"""The PIV data the training card serves (SP 800-73-4 Part 1/2 subset), built from a :class:`CardFile`.

Pure functions from card data to the bytes of each BER-TLV object; :class:`PivApplet` only routes APDUs.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization

from app.card.tlv import encode_tlv

from .cardfile import CardFile

# NIST RID A0 00 00 03 08, PIX 00 00 10 00 01 00 (PIV application, version 01 00)
PIV_AID = bytes.fromhex("A000000308000010000100")
PIV_PIX = PIV_AID[5:]
MIN_SELECT_PREFIX = 5  # the RID: yubico-piv-tool selects with exactly these 5 bytes, OpenSC with 9
LABEL = b"Spine Desk Training PIV"

# cryptographic algorithm identifiers (SP 800-78-4)
ALG_3DES, ALG_AES128, ALG_AES192, ALG_AES256 = 0x03, 0x08, 0x0A, 0x0C
ALG_RSA2048, ALG_ECC_P256 = 0x07, 0x11
ALG_OF = {"rsa2048": ALG_RSA2048, "p256": ALG_ECC_P256}
WITNESS_ALGS = frozenset({0x00, ALG_3DES, ALG_AES128, ALG_AES192, ALG_AES256})

# key references
KEY_PIN, KEY_PUK = 0x80, 0x81
KEY_ADMIN, KEY_PIV_AUTH = 0x9B, 0x9A

# BER-TLV tags of the data objects (the value of tag 5C in GET DATA)
TAG_DISCOVERY = 0x7E
TAG_CCC = 0x5FC107
TAG_CHUID = 0x5FC102
TAG_CERT_PIV_AUTH = 0x5FC105
TAG_KEY_HISTORY = 0x5FC10C

# ATR: TS=3B, T0=8C (TD1 follows, 12 historical bytes), TD1=01 (T=1 only, nothing further), historical bytes
# = category 80 + compact-TLV 5A "card issuer's data" (10 bytes "SPINE-DESK"), then TCK.
_HISTORICAL = bytes([0x80, 0x5A]) + b"SPINE-DESK"


def _with_tck(atr: bytes) -> bytes:
    tck = 0
    for byte in atr[1:]:
        tck ^= byte
    return atr + bytes([tck])


ATR = _with_tck(bytes([0x3B, 0x8C, 0x01]) + _HISTORICAL)


def select_aid_matches(aid: bytes) -> bool:
    """Whether a SELECT's AID names the PIV application: any prefix of :data:`PIV_AID` of at least the RID.

    Shorter prefixes (``A0 00``…) are refused: they name no application in particular, and other OpenSC
    drivers probing with them must not think they found their card.
    """
    return MIN_SELECT_PREFIX <= len(aid) <= len(PIV_AID) and PIV_AID.startswith(aid)


def application_property_template() -> bytes:
    """SELECT's answer: ``61 {4F PIX, 79 {4F AID}, 50 label, AC {80 07, 80 11, 06 00}}``."""
    algorithms = encode_tlv(0x80, bytes([ALG_RSA2048])) + encode_tlv(0x80, bytes([ALG_ECC_P256]))
    algorithms += encode_tlv(0x06, b"")
    body = (encode_tlv(0x4F, PIV_PIX) + encode_tlv(0x79, encode_tlv(0x4F, PIV_AID)) + encode_tlv(0x50, LABEL)
            + encode_tlv(0xAC, algorithms))
    return encode_tlv(0x61, body)


def discovery_object() -> bytes:
    """``7E {4F AID, 5F2F 40 00}``: PIN usage policy "PIV Card Application PIN only"."""
    return encode_tlv(TAG_DISCOVERY, encode_tlv(0x4F, PIV_AID) + encode_tlv(0x5F2F, b"\x40\x00"))


def chuid(card: CardFile) -> bytes:
    """``53 {30 FASC-N, 34 GUID, 35 expiry YYYYMMDD, 3E signature (empty), FE LRC (empty)}``."""
    body = (encode_tlv(0x30, card.fascn) + encode_tlv(0x34, card.card_uuid.bytes)
            + encode_tlv(0x35, card.chuid_expiry.strftime("%Y%m%d").encode("ascii"))
            + encode_tlv(0x3E, b"") + encode_tlv(0xFE, b""))
    return encode_tlv(0x53, body)


def certificate_object(card: CardFile) -> bytes:
    """``53 {70 certificate DER, 71 00 (not compressed), FE LRC (empty)}``."""
    der = card.certificate.public_bytes(serialization.Encoding.DER)
    return encode_tlv(0x53, encode_tlv(0x70, der) + encode_tlv(0x71, b"\x00") + encode_tlv(0xFE, b""))


def key_history() -> bytes:
    """``53 {C1 00, C2 00, FE}``: no retired keys on or off card."""
    return encode_tlv(0x53, encode_tlv(0xC1, b"\x00") + encode_tlv(0xC2, b"\x00") + encode_tlv(0xFE, b""))


def data_objects(card: CardFile) -> dict[int, bytes]:
    """Every object GET DATA can return, by tag; the others (CCC, facial image, fingerprints, security
    object, printed information, other certificates, retired keys…) are absent and answer 6A82."""
    return {
        TAG_DISCOVERY: discovery_object(),
        TAG_CHUID: chuid(card),
        TAG_CERT_PIV_AUTH: certificate_object(card),
        TAG_KEY_HISTORY: key_history(),
    }
