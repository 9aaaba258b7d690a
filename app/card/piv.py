"""PIV (NIST SP 800-73-4) card-edge client: select, read objects, PIN, and GENERAL AUTHENTICATE signing.

Works with any PIV card (our training card, a YubiKey's PIV application, government PIV cards): only the
standard card edge is used, and optional objects are treated as optional.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from enum import IntEnum

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from app.card.apdu import SW, CommandApdu, Exchange, check
from app.card.connection import CardConnection
from app.card.management_key import ManagementKey
from app.card.tlv import TlvError, encode_tlv, iter_tlvs, parse_single, tlv_map
from app.errors import (
    ApduError,
    CardManagementRefused,
    CardProtocolError,
    InvalidPinFormat,
    NotPiv,
    PinBlocked,
    PinIncorrect,
    PinRequired,
    PukBlocked,
    PukIncorrect,
)

PIV_AID = bytes.fromhex("A000000308000010000100")
PIV_PIN = 0x80
PIN_LENGTH = 8

INS_SELECT = 0xA4
INS_GET_DATA = 0xCB
INS_VERIFY = 0x20
INS_GENERAL_AUTHENTICATE = 0x87
INS_CHANGE_REFERENCE = 0x24
INS_RESET_RETRY = 0x2C
INS_GENERATE = 0x47
INS_PUT_DATA = 0xDB

# DigestInfo prefix for SHA-256 (RFC 8017 §9.2 note 1)
SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


class ObjectTag(IntEnum):
    DISCOVERY = 0x7E
    CCC = 0x5FC107
    CHUID = 0x5FC102
    AUTHENTICATION = 0x5FC105  # certificate for key 9A
    KEY_HISTORY = 0x5FC10C


class Slot(IntEnum):
    AUTHENTICATION = 0x9A
    CARD_MANAGEMENT = 0x9B
    SIGNATURE = 0x9C


class KeyAlgorithm(IntEnum):
    RSA1024 = 0x06
    RSA2048 = 0x07
    ECCP256 = 0x11
    ECCP384 = 0x14


@dataclass(frozen=True, slots=True)
class PivApplication:
    aid: bytes
    label: str | None
    algorithms: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Chuid:
    guid: uuid.UUID | None
    fascn: bytes | None
    expiry: date | None


@dataclass(frozen=True, slots=True)
class PinStatus:
    verified: bool
    tries_left: int | None  # None when the card only says "verified"
    blocked: bool


@dataclass(frozen=True, slots=True)
class Signature:
    algorithm: KeyAlgorithm
    value: bytes  # RSA: the PKCS#1 v1.5 signature; EC: DER-encoded ECDSA (r, s)


def encode_pin(pin: str) -> bytes:
    """A PIV PIN is 6 to 8 digits, sent padded with FF to 8 bytes. Checked before anything reaches the card."""
    if not 6 <= len(pin) <= PIN_LENGTH:
        raise InvalidPinFormat("a smartcard PIN has 6 to 8 digits")
    if not pin.isascii() or not pin.isdigit():
        raise InvalidPinFormat("a smartcard PIN contains digits only")
    return pin.encode("ascii").ljust(PIN_LENGTH, b"\xff")


def algorithm_for(public_key: object) -> KeyAlgorithm:
    if isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size in (1024, 2048):
        return KeyAlgorithm.RSA1024 if public_key.key_size == 1024 else KeyAlgorithm.RSA2048
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if isinstance(public_key.curve, ec.SECP256R1):
            return KeyAlgorithm.ECCP256
        if isinstance(public_key.curve, ec.SECP384R1):
            return KeyAlgorithm.ECCP384
    raise CardProtocolError(f"unsupported PIV key type {type(public_key).__name__}")


def pkcs1v15_sha256_block(message: bytes, key_bytes: int) -> bytes:
    """EMSA-PKCS1-v1_5 encoding of SHA-256(message), which the card raises to its private exponent."""
    t = SHA256_DIGEST_INFO + hashlib.sha256(message).digest()
    return b"\x00\x01" + b"\xff" * (key_bytes - len(t) - 3) + b"\x00" + t


def _decode_chuid(value: bytes) -> Chuid:
    fields = tlv_map(value)
    guid = fields.get(0x34)
    expiry_raw = fields.get(0x35)
    expiry = None
    if expiry_raw and len(expiry_raw) == 8 and expiry_raw.isdigit():
        with contextlib.suppress(ValueError):
            expiry = date(int(expiry_raw[:4]), int(expiry_raw[4:6]), int(expiry_raw[6:]))
    card_guid = uuid.UUID(bytes=guid) if guid and len(guid) == 16 and any(guid) else None
    return Chuid(guid=card_guid, fascn=fields.get(0x30), expiry=expiry)


MAX_CERTIFICATE = 16 * 1024  # far above any PIV certificate; a card cannot make us inflate a "gzip bomb"


def _gunzip_bounded(data: bytes) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)  # gzip container
    try:
        out = inflater.decompress(data, MAX_CERTIFICATE)
    except zlib.error as exc:
        raise CardProtocolError(f"compressed certificate does not decompress: {exc}") from exc
    if inflater.unconsumed_tail:
        raise CardProtocolError(f"compressed certificate inflates beyond {MAX_CERTIFICATE} bytes")
    if not inflater.eof:
        raise CardProtocolError("compressed certificate is truncated")
    return out


def _decode_certificate(value: bytes) -> x509.Certificate:
    fields = tlv_map(value)
    der = fields.get(0x70)
    if not der:
        raise CardProtocolError("certificate object has no certificate (tag 70)")
    info = fields.get(0x71, b"\x00")
    if info and info[0] & 0x01:  # CertInfo bit: the certificate is gzip-compressed
        der = _gunzip_bounded(der)
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise CardProtocolError(f"certificate on the card is not valid DER: {exc}") from exc


class PivSession:
    """Domain verbs over one card connection. Not thread-safe across sessions; serialised within one."""

    def __init__(self, connection: CardConnection) -> None:
        self._conn = connection
        self._exchange = Exchange(connection.transmit)
        self._lock = threading.RLock()
        self.application: PivApplication | None = None

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        outer = getattr(self._conn, "exclusive", None)
        with self._lock, (outer() if outer else contextlib.nullcontext()):
            yield

    # --- selection and objects ---------------------------------------------------------------------------

    def select(self) -> PivApplication:
        with self._exclusive():
            data, sw = self._exchange(CommandApdu(0x00, INS_SELECT, 0x04, 0x00, PIV_AID, le=0))
        if sw in (SW.FILE_NOT_FOUND, SW.INS_NOT_SUPPORTED, SW.CLA_NOT_SUPPORTED, SW.FUNCTION_NOT_SUPPORTED):
            raise NotPiv("the card has no PIV application")
        check(sw, "SELECT PIV")
        self.application = self._parse_property_template(data)
        return self.application

    @staticmethod
    def _parse_property_template(data: bytes) -> PivApplication:
        if not data:  # some cards answer a bare 9000; still PIV
            return PivApplication(PIV_AID, None, ())
        try:
            apt = parse_single(data, 0x61).value
            fields = tlv_map(apt)
            aid = tlv_map(fields[0x79]).get(0x4F, PIV_AID) if 0x79 in fields else PIV_AID
            label = fields[0x50].decode("utf-8", "replace") if 0x50 in fields else None
            algs = tuple(t.value[0] for t in iter_tlvs(fields.get(0xAC, b"")) if t.tag == 0x80 and t.value)
        except (TlvError, KeyError) as exc:
            raise NotPiv(f"application property template is malformed: {exc}") from exc
        return PivApplication(aid, label, algs)

    def read_object(self, tag: int) -> bytes | None:
        """The value inside an object's 53 wrapper; ``None`` when the card does not hold it (6A82)."""
        tag_bytes = tag.to_bytes(1 if tag <= 0xFF else 3, "big")
        with self._exclusive():
            data, sw = self._exchange(
                CommandApdu(0x00, INS_GET_DATA, 0x3F, 0xFF, encode_tlv(0x5C, tag_bytes), le=0))
        if sw == SW.FILE_NOT_FOUND:
            return None
        check(sw, f"GET DATA {tag:X}")
        outer = 0x7E if tag == ObjectTag.DISCOVERY else 0x53
        try:
            return parse_single(data, outer).value
        except TlvError as exc:
            raise CardProtocolError(f"object {tag:X}: {exc}") from exc

    def read_chuid(self) -> Chuid:
        value = self.read_object(ObjectTag.CHUID)
        if value is None:
            raise CardProtocolError("the card has no CHUID, which every PIV card must hold")
        return _decode_chuid(value)

    def read_certificate(self, tag: int = ObjectTag.AUTHENTICATION) -> x509.Certificate | None:
        value = self.read_object(tag)
        return None if value is None else _decode_certificate(value)

    # --- PIN ---------------------------------------------------------------------------------------------

    def pin_status(self) -> PinStatus:
        """Ask the card how many tries are left without presenting a PIN (VERIFY with no data)."""
        with self._exclusive():
            _, sw = self._exchange(CommandApdu(0x00, INS_VERIFY, 0x00, PIV_PIN))
        if sw == SW.SUCCESS:
            return PinStatus(verified=True, tries_left=None, blocked=False)
        if sw & 0xFFF0 == 0x63C0:
            return PinStatus(verified=False, tries_left=sw & 0x0F, blocked=(sw & 0x0F) == 0)
        if sw == SW.AUTH_METHOD_BLOCKED:
            return PinStatus(verified=False, tries_left=0, blocked=True)
        raise ApduError(sw, "PIN status")

    def verify_pin(self, pin: str) -> None:
        encoded = encode_pin(pin)
        with self._exclusive():
            _, sw = self._exchange(CommandApdu(0x00, INS_VERIFY, 0x00, PIV_PIN, encoded))
        self._raise_for_pin(sw, "VERIFY PIN")

    def logout(self) -> None:
        """Make the card forget a verified PIN (VERIFY with P1=FF); harmless on cards that already forgot."""
        with self._exclusive():
            _, sw = self._exchange(CommandApdu(0x00, INS_VERIFY, 0xFF, PIV_PIN))
        if sw not in (SW.SUCCESS, SW.INCORRECT_P1P2, SW.WRONG_P1P2) and sw & 0xFFF0 != 0x63C0:
            raise ApduError(sw, "PIN logout")

    def change_pin(self, old_pin: str, new_pin: str) -> None:
        data = encode_pin(old_pin) + encode_pin(new_pin)
        with self._exclusive():
            _, sw = self._exchange(CommandApdu(0x00, INS_CHANGE_REFERENCE, 0x00, PIV_PIN, data))
        self._raise_for_pin(sw, "CHANGE PIN")

    def unblock_pin(self, puk: str, new_pin: str) -> None:
        """RESET RETRY COUNTER: the PUK (8 digits) sets a new PIN and restores its tries."""
        if len(puk) != PIN_LENGTH or not puk.isascii() or not puk.isdigit():
            raise InvalidPinFormat("a PUK has 8 digits")
        data = puk.encode("ascii") + encode_pin(new_pin)
        with self._exclusive():
            _, sw = self._exchange(CommandApdu(0x00, INS_RESET_RETRY, 0x00, PIV_PIN, data))
        # here the counters are the PUK's: a wrong or blocked PUK is not a wrong PIN
        if sw & 0xFFF0 == 0x63C0:
            if sw & 0x0F == 0:
                raise PukBlocked("UNBLOCK PIN: no PUK tries left")
            raise PukIncorrect(sw & 0x0F)
        if sw == SW.AUTH_METHOD_BLOCKED:
            raise PukBlocked("UNBLOCK PIN: the PUK is blocked")
        self._raise_for_pin(sw, "UNBLOCK PIN")

    @staticmethod
    def _raise_for_pin(sw: int, command: str) -> None:
        if sw == SW.SUCCESS:
            return
        if sw & 0xFFF0 == 0x63C0:
            if sw & 0x0F == 0:
                raise PinBlocked(f"{command}: no tries left")
            raise PinIncorrect(sw & 0x0F)
        if sw == SW.AUTH_METHOD_BLOCKED:
            raise PinBlocked(f"{command}: blocked")
        raise ApduError(sw, command)

    # --- signing -----------------------------------------------------------------------------------------

    def sign(self, message: bytes, algorithm: KeyAlgorithm, slot: Slot = Slot.AUTHENTICATION) -> Signature:
        """Sign ``message`` with the key in ``slot``: RSA PKCS#1 v1.5 over SHA-256, ECDSA P-256 over SHA-256,
        ECDSA P-384 over SHA-384. Needs the PIN."""
        if algorithm in (KeyAlgorithm.RSA1024, KeyAlgorithm.RSA2048):
            challenge = pkcs1v15_sha256_block(message, 128 if algorithm == KeyAlgorithm.RSA1024 else 256)
        elif algorithm == KeyAlgorithm.ECCP384:
            challenge = hashlib.sha384(message).digest()  # ECDSA P-384 is paired with SHA-384
        else:
            challenge = hashlib.sha256(message).digest()
        body = encode_tlv(0x7C, encode_tlv(0x82, b"") + encode_tlv(0x81, challenge))
        with self._exclusive():
            data, sw = self._exchange(CommandApdu(0x00, INS_GENERAL_AUTHENTICATE, algorithm, slot, body, le=0))
        if sw == SW.SECURITY_STATUS_NOT_SATISFIED:
            raise PinRequired("the card needs the PIN before it signs")
        check(sw, "GENERAL AUTHENTICATE")
        try:
            value = tlv_map(parse_single(data, 0x7C).value).get(0x82)
        except TlvError as exc:
            raise CardProtocolError(f"signature response: {exc}") from exc
        if not value:
            raise CardProtocolError("signature response holds no signature (tag 82)")
        return Signature(algorithm, value)


    # --- card management: key generation and certificate storage ------------------------------------------

    def authenticate_management(self, key: ManagementKey) -> None:
        """Prove the card management key (9B) by challenge-response; :class:`CardManagementRefused` if the card
        does not accept it (wrong key, another algorithm) or does not support card management."""
        request = encode_tlv(0x7C, encode_tlv(0x81, b""))
        with self._exclusive():
            data, sw = self._exchange(
                CommandApdu(0x00, INS_GENERAL_AUTHENTICATE, key.algorithm, Slot.CARD_MANAGEMENT, request, le=0))
            if sw in (SW.INCORRECT_P1P2, SW.REFERENCE_NOT_FOUND, SW.SECURITY_STATUS_NOT_SATISFIED):
                raise CardManagementRefused(f"the card has no {key.name} card management key")
            check(sw, "GENERAL AUTHENTICATE 9B")
            try:
                challenge = tlv_map(parse_single(data, 0x7C).value).get(0x81, b"")
            except TlvError as exc:
                raise CardProtocolError(f"management challenge: {exc}") from exc
            if len(challenge) != key.block_size:
                raise CardProtocolError(f"management challenge of {len(challenge)} bytes for a {key.name} key")
            answer = encode_tlv(0x7C, encode_tlv(0x82, key.encrypt_block(challenge)))
            _, sw = self._exchange(
                CommandApdu(0x00, INS_GENERAL_AUTHENTICATE, key.algorithm, Slot.CARD_MANAGEMENT, answer))
        if sw == SW.SECURITY_STATUS_NOT_SATISFIED:
            raise CardManagementRefused("the card did not accept the management key")
        check(sw, "GENERAL AUTHENTICATE 9B")

    def generate_key(self, algorithm: KeyAlgorithm, slot: Slot = Slot.AUTHENTICATION) -> rsa.RSAPublicKey | \
            ec.EllipticCurvePublicKey:
        """GENERATE ASYMMETRIC KEY PAIR in ``slot`` (RSA-2048 or P-256): the new public key. The card replaces the
        slot's private key at once. Needs :meth:`authenticate_management` first."""
        if algorithm not in (KeyAlgorithm.RSA2048, KeyAlgorithm.ECCP256):
            raise CardProtocolError(f"Spine Desk generates RSA-2048 or P-256 keys, not {algorithm.name}")
        template = encode_tlv(0xAC, encode_tlv(0x80, bytes([algorithm])))
        with self._exclusive():
            data, sw = self._exchange(CommandApdu(0x00, INS_GENERATE, 0x00, slot, template, le=0))
        if sw == SW.SECURITY_STATUS_NOT_SATISFIED:
            raise CardManagementRefused("the card generates keys only after card management authentication")
        check(sw, "GENERATE ASYMMETRIC KEY PAIR")
        try:
            fields = tlv_map(parse_single(data, 0x7F49).value)
        except TlvError as exc:
            raise CardProtocolError(f"generated public key: {exc}") from exc
        try:
            if algorithm == KeyAlgorithm.RSA2048:
                n, e = fields.get(0x81), fields.get(0x82)
                if not n or not e:
                    raise ValueError("no modulus (81) or exponent (82)")
                return rsa.RSAPublicNumbers(int.from_bytes(e, "big"), int.from_bytes(n, "big")).public_key()
            point = fields.get(0x86)
            if not point:
                raise ValueError("no point (86)")
            return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        except ValueError as exc:
            raise CardProtocolError(f"generated public key is malformed ({exc})") from exc

    def put_certificate(self, certificate: x509.Certificate, tag: int = ObjectTag.AUTHENTICATION) -> None:
        """PUT DATA the certificate object ``53 {70 DER, 71 00, FE}``. Needs :meth:`authenticate_management`."""
        der = certificate.public_bytes(serialization.Encoding.DER)
        value = encode_tlv(0x70, der) + encode_tlv(0x71, b"\x00") + encode_tlv(0xFE, b"")
        body = encode_tlv(0x5C, tag.to_bytes(3, "big")) + encode_tlv(0x53, value)
        with self._exclusive():
            _, sw = self._exchange(CommandApdu(0x00, INS_PUT_DATA, 0x3F, 0xFF, body))
        if sw == SW.SECURITY_STATUS_NOT_SATISFIED:
            raise CardManagementRefused("the card stores certificates only after card management authentication")
        if sw == SW.INCORRECT_DATA:
            raise CardManagementRefused("the card refused the certificate (it does not match the card's key)")
        check(sw, "PUT DATA certificate")
