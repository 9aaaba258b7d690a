"""A PIV applet (SP 800-73-4 subset) answering raw APDUs, as the training card behind pcscd's virtual reader.

What it answers, and the choices where the standard leaves room:

* Nothing is selected after power-on/reset; until SELECT, every applet command answers ``6A82`` (OpenSC's
  first APDU is GET DATA 7E without SELECT). SELECT accepts any prefix of the PIV AID at least as long as the
  NIST RID (5 bytes); a foreign or shorter AID answers ``6A82`` and leaves the selection as it was.
  Re-selecting PIV keeps the PIN-verified state (OpenSC re-selects whenever it takes the card lock).
* Responses longer than Le (256 without Le) go out in pieces with ``61xx`` + GET RESPONSE; any other command
  drops what was pending. Command chaining (CLA 10) collects up to 4 KiB; a command with another INS/P1/P2
  aborts the chain and is processed on its own.
* VERIFY/CHANGE REFERENCE DATA/RESET RETRY COUNTER take 8-byte blocks of 6-8 digits padded with FF. A
  block that cannot be a PIN (wrong length, non-digits, bad padding) answers ``6A80`` and does **not**
  consume a try: it cannot be a guess. A wrong PIN clears the verified state. Retry counters are persisted
  before the answer goes out; if persisting fails the answer is ``6581`` and nothing is granted.
* GENERAL AUTHENTICATE with an algorithm that is not the card key's answers ``6A86`` (P1 is the algorithm);
  other key references than 9A/9B answer ``6A88``.
* Card management (key 9B, the management key of the card file, AES-128 or 3DES): ``7C 02 81 00`` asks for a
  challenge (``7C 81 <one random block>``, 8 bytes for 3DES/00, 16 for AES); ``7C 82 <the block encrypted under
  the management key, ECB>`` answers it. The challenge is single-use; a wrong answer, an answer under another
  algorithm (P1) or one with no challenge outstanding answers ``6982``. A right one authenticates the card
  manager until reset or power-off.
* GENERATE ASYMMETRIC KEY PAIR (INS 47, P2 9A, data ``AC {80 alg}``: 07 RSA-2048 or 11 P-256) and PUT DATA
  (INS DB, ``5C 03 5FC105`` + ``53 {70 cert, 71 00, FE}``) need the card manager (``6982`` otherwise). GENERATE
  replaces the slot's key at once, as PIV cards do, and answers ``7F49 {81 n, 82 e}`` or ``7F49 {86 point}``;
  until a certificate for the new key is stored the card keeps serving the old one. PUT DATA accepts only the
  PIV Authentication certificate, uncompressed, and only one that matches the card's key (``6A80`` otherwise; a
  real card would store anything, the training card keeps its file consistent). Key and certificate are
  persisted before the answer goes out; if that fails the answer is ``6581`` and the card keeps what it had.
* ``process`` never raises: an unexpected internal error answers ``6F00``. Logs carry INS bytes, lengths and
  status words only, never command data (it holds PINs).
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.card.apdu import CLA_CHAINING, INS_GET_RESPONSE, SW, CommandApdu, encode_response
from app.card.management_key import BLOCK_SIZES
from app.card.tlv import TlvError, encode_tlv, parse_single, parse_tlvs, tlv_map
from app.errors import CardProtocolError

from .cardfile import CardFile, PrivateKey
from .issue import generate_key
from .pin import SecretHash, unpad_pin
from .piv_objects import (
    ALG_OF,
    ATR,
    KEY_ADMIN,
    KEY_PIN,
    KEY_PIV_AUTH,
    KEY_PUK,
    TAG_CERT_PIV_AUTH,
    WITNESS_ALGS,
    application_property_template,
    data_objects,
    select_aid_matches,
)
from .signing import CardSigner

log = logging.getLogger(__name__)

MAX_CHAIN_DATA = 4096
INS_SELECT, INS_GET_DATA, INS_VERIFY = 0xA4, 0xCB, 0x20
INS_CHANGE_REFERENCE, INS_RESET_RETRY, INS_GENERAL_AUTH = 0x24, 0x2C, 0x87
INS_GENERATE, INS_PUT_DATA = 0x47, 0xDB
ALG_NAMES = {code: name for name, code in ALG_OF.items()}

Reply = tuple[bytes, int]


@dataclass
class _Chain:
    key: tuple[int, int, int]  # INS, P1, P2
    data: bytearray = field(default_factory=bytearray)


class PivApplet:
    """The card: feed it C-APDUs with :meth:`process`, power it with :meth:`power_on`/:meth:`power_off`.

    ``persist(card)`` is called whenever a retry counter or a PIN/PUK changes (not for a right PIN whose
    counter was already full). Thread-safe: one lock around every entry point.
    """

    def __init__(self, card: CardFile, persist: Callable[[CardFile], None]) -> None:
        self._card = card
        self._persist = persist
        self._objects = data_objects(card)
        self._alg = ALG_OF[card.algorithm]
        self._signer = CardSigner(card.private_key)
        self._lock = threading.RLock()
        self._saved = self._secret_state()
        self._handlers: dict[int, Callable[[CommandApdu], Reply]] = {
            INS_SELECT: self._select,
            INS_GET_DATA: self._get_data,
            INS_VERIFY: self._verify,
            INS_CHANGE_REFERENCE: self._change_reference,
            INS_RESET_RETRY: self._reset_retry_counter,
            INS_GENERAL_AUTH: self._general_authenticate,
            INS_GENERATE: self._generate,
            INS_PUT_DATA: self._put_data,
        }
        self._clear()

    @property
    def atr(self) -> bytes:
        return ATR

    @property
    def card(self) -> CardFile:
        return self._card

    @property
    def pin_verified(self) -> bool:
        return self._verified

    @property
    def admin_authenticated(self) -> bool:
        return self._admin

    def power_on(self) -> None:
        with self._lock:
            self._clear()

    def power_off(self) -> None:
        with self._lock:
            self._clear()

    def reset(self) -> None:
        with self._lock:
            self._clear()

    def _clear(self) -> None:
        self._selected = False
        self._verified = False
        self._admin = False  # the card manager proved the management key
        self._mgmt_challenge: tuple[int, bytes] | None = None  # (algorithm, block) outstanding
        self._chain: _Chain | None = None
        self._pending: bytes | None = None

    # --- dispatch ----------------------------------------------------------------------------------------

    def process(self, apdu: bytes) -> bytes:
        """Answer one C-APDU with its R-APDU (data + SW). Never raises."""
        with self._lock:
            raw = b""
            try:
                raw = bytes(apdu)
                data, sw = self._process(raw)
            except Exception:
                log.exception("PIV applet failed on INS %s", f"{raw[1]:02X}" if len(raw) > 1 else "?")
                self._chain = self._pending = None
                data, sw = b"", SW.NO_PRECISE_DIAGNOSIS
            return encode_response(data, sw)

    def _process(self, raw: bytes) -> Reply:
        if len(raw) < 4 or raw[0] & ~CLA_CHAINING:
            self._chain = self._pending = None
            return b"", SW.WRONG_LENGTH if len(raw) < 4 else SW.CLA_NOT_SUPPORTED
        try:
            cmd = CommandApdu.parse(raw)
        except CardProtocolError:
            self._chain = self._pending = None
            return b"", SW.WRONG_LENGTH
        log.debug("C-APDU INS=%02X P2=%02X Lc=%d", cmd.ins, cmd.p2, len(cmd.data))
        if cmd.ins == INS_GET_RESPONSE:
            self._chain = None
            return self._get_response(cmd)
        self._pending = None
        handler = self._handlers.get(cmd.ins)
        if handler is None:
            self._chain = None
            return b"", SW.INS_NOT_SUPPORTED
        key = (cmd.ins, cmd.p1, cmd.p2)
        if self._chain is not None and self._chain.key != key:
            self._chain = None  # a different command mid-chain aborts the chain
        if cmd.chained:
            self._chain = self._chain or _Chain(key)
            self._chain.data += cmd.data
            if len(self._chain.data) > MAX_CHAIN_DATA:
                self._chain = None
                return b"", SW.WRONG_LENGTH
            return b"", SW.SUCCESS
        if self._chain is not None:
            cmd = replace(cmd, data=bytes(self._chain.data) + cmd.data)
            self._chain = None
            if len(cmd.data) > MAX_CHAIN_DATA:
                return b"", SW.WRONG_LENGTH
        if not self._selected and cmd.ins != INS_SELECT:
            return b"", SW.FILE_NOT_FOUND
        self._saved = self._secret_state()  # what _commit() restores if persisting the change fails
        data, sw = handler(cmd)
        return self._send(data, sw, cmd.le)

    def _secret_state(self) -> tuple[SecretHash, SecretHash, int, int]:
        c = self._card
        return c.pin_hash, c.puk_hash, c.pin_tries_left, c.puk_tries_left

    def _send(self, data: bytes, sw: int, le: int | None) -> Reply:
        limit = le or 256
        if len(data) <= limit:
            return data, sw
        self._pending = data[limit:]
        return data[:limit], SW.BYTES_REMAINING | (min(len(self._pending), 256) & 0xFF)

    def _get_response(self, cmd: CommandApdu) -> Reply:
        if self._pending is None:
            return b"", SW.CONDITIONS_NOT_SATISFIED
        if cmd.p1 or cmd.p2:
            return b"", SW.INCORRECT_P1P2
        pending, self._pending = self._pending, None
        return self._send(pending, SW.SUCCESS, cmd.le)

    # --- SELECT, GET DATA --------------------------------------------------------------------------------

    def _select(self, cmd: CommandApdu) -> Reply:
        if cmd.p1 != 0x04:
            return b"", SW.FILE_NOT_FOUND  # no file system on this card: SELECT by FID/path finds nothing
        if cmd.p2 not in (0x00, 0x0C):
            return b"", SW.INCORRECT_P1P2
        if not select_aid_matches(cmd.data):
            return b"", SW.FILE_NOT_FOUND
        self._selected = True
        return (application_property_template() if cmd.p2 == 0x00 else b""), SW.SUCCESS

    def _get_data(self, cmd: CommandApdu) -> Reply:
        if (cmd.p1, cmd.p2) != (0x3F, 0xFF):
            return b"", SW.INCORRECT_P1P2
        try:
            tag = parse_single(cmd.data, 0x5C).value
        except TlvError:
            return b"", SW.INCORRECT_DATA
        if not 1 <= len(tag) <= 3:
            return b"", SW.INCORRECT_DATA
        obj = self._objects.get(int.from_bytes(tag, "big"))
        return (obj, SW.SUCCESS) if obj is not None else (b"", SW.FILE_NOT_FOUND)

    # --- PIN and PUK -------------------------------------------------------------------------------------

    def _verify(self, cmd: CommandApdu) -> Reply:
        if cmd.p2 != KEY_PIN:
            return b"", SW.REFERENCE_NOT_FOUND
        if cmd.p1 == 0xFF:
            if cmd.data:
                return b"", SW.WRONG_LENGTH
            self._verified = False
            return b"", SW.SUCCESS
        if cmd.p1 != 0x00:
            return b"", SW.INCORRECT_P1P2
        card = self._card
        if not cmd.data:
            if card.pin_blocked:
                return b"", SW.AUTH_METHOD_BLOCKED
            return b"", SW.SUCCESS if self._verified else _tries_sw(card.pin_tries_left)
        digits = unpad_pin(cmd.data)
        if digits is None:
            return b"", SW.INCORRECT_DATA
        sw = self._present(KEY_PIN, digits)
        if sw == SW.SUCCESS:
            self._verified = True
        return b"", sw

    def _change_reference(self, cmd: CommandApdu) -> Reply:
        if cmd.p1 != 0x00:
            return b"", SW.INCORRECT_P1P2
        if cmd.p2 not in (KEY_PIN, KEY_PUK):
            return b"", SW.REFERENCE_NOT_FOUND
        old, new = _two_blocks(cmd.data)
        if old is None or new is None or (cmd.p2 == KEY_PUK and len(new) != 8):
            return b"", SW.INCORRECT_DATA
        sw = self._present(cmd.p2, old, keep_on_success=True)
        if sw != SW.SUCCESS:
            return b"", sw
        if cmd.p2 == KEY_PIN:
            self._card.set_pin(new)
            self._card.pin_tries_left = self._card.pin_tries_max
        else:
            self._card.set_puk(new)
            self._card.puk_tries_left = self._card.puk_tries_max
        return b"", SW.SUCCESS if self._commit() else SW.MEMORY_FAILURE

    def _reset_retry_counter(self, cmd: CommandApdu) -> Reply:
        if cmd.p1 != 0x00:
            return b"", SW.INCORRECT_P1P2
        if cmd.p2 != KEY_PIN:
            return b"", SW.REFERENCE_NOT_FOUND
        puk, new = _two_blocks(cmd.data)
        if puk is None or new is None:
            return b"", SW.INCORRECT_DATA
        sw = self._present(KEY_PUK, puk, keep_on_success=True)
        if sw != SW.SUCCESS:
            return b"", sw
        card = self._card
        card.set_pin(new)
        card.pin_tries_left, card.puk_tries_left = card.pin_tries_max, card.puk_tries_max
        self._verified = False
        return b"", SW.SUCCESS if self._commit() else SW.MEMORY_FAILURE

    def _present(self, ref: int, digits: bytes, *, keep_on_success: bool = False) -> int:
        """Check a PIN (ref 80) or PUK (81) against its retry counter; persists any counter change.

        On success the counter goes back to its maximum (persisted now unless the caller will persist anyway,
        ``keep_on_success``). On failure the counter drops and, for the PIN, the verified state is cleared.
        """
        card = self._card
        name = "pin" if ref == KEY_PIN else "puk"
        if getattr(card, f"{name}_tries_left") <= 0:
            return SW.AUTH_METHOD_BLOCKED
        right = card.check_pin(digits) if ref == KEY_PIN else card.check_puk(digits)
        if right:
            most = getattr(card, f"{name}_tries_max")
            if getattr(card, f"{name}_tries_left") == most or keep_on_success:
                return SW.SUCCESS
            setattr(card, f"{name}_tries_left", most)
            return SW.SUCCESS if self._commit() else SW.MEMORY_FAILURE
        if ref == KEY_PIN:
            self._verified = False
        left = getattr(card, f"{name}_tries_left") - 1
        setattr(card, f"{name}_tries_left", left)
        if not self._commit():
            return SW.MEMORY_FAILURE
        return SW.AUTH_METHOD_BLOCKED if left <= 0 else _tries_sw(left)

    def _commit(self) -> bool:
        """Persist the PIN/PUK state. If that fails the command answers 6581 and grants nothing: a new PIN/PUK
        and any raised retry counter are rolled back to the state before this command, while a lowered counter
        is kept in memory (fail closed: a full disk must not turn wrong PINs into free guesses)."""
        try:
            self._persist(self._card)
        except Exception:
            log.exception("could not persist the training card's PIN state")
            c = self._card
            pin_hash, puk_hash, pin_left, puk_left = self._saved
            c.pin_hash, c.puk_hash = pin_hash, puk_hash
            c.pin_tries_left = min(c.pin_tries_left, pin_left)
            c.puk_tries_left = min(c.puk_tries_left, puk_left)
            self._verified = False
            return False
        return True

    # --- GENERAL AUTHENTICATE ----------------------------------------------------------------------------

    def _general_authenticate(self, cmd: CommandApdu) -> Reply:
        if cmd.p2 == KEY_ADMIN:
            return self._witness(cmd)
        if cmd.p2 != KEY_PIV_AUTH:
            return b"", SW.REFERENCE_NOT_FOUND
        if cmd.p1 != self._alg:
            return b"", SW.INCORRECT_P1P2
        if not self._verified:
            return b"", SW.SECURITY_STATUS_NOT_SATISFIED
        try:
            fields = tlv_map(parse_single(cmd.data, 0x7C).value)
        except TlvError:
            return b"", SW.INCORRECT_DATA
        if fields.get(0x82) != b"" or not fields.get(0x81):
            return b"", SW.INCORRECT_DATA
        challenge = fields[0x81]
        signature = self._signer.sign(challenge)
        if signature is None:
            return b"", SW.INCORRECT_DATA
        return encode_tlv(0x7C, encode_tlv(0x82, signature)), SW.SUCCESS

    def _witness(self, cmd: CommandApdu) -> Reply:
        if cmd.p1 not in WITNESS_ALGS:
            return b"", SW.INCORRECT_P1P2
        try:
            inner = [(t.tag, t.value) for t in parse_tlvs(parse_single(cmd.data, 0x7C).value)]
        except TlvError:
            return b"", SW.INCORRECT_DATA
        outstanding, self._mgmt_challenge = self._mgmt_challenge, None
        if inner == [(0x81, b"")]:
            self._admin = False
            challenge = secrets.token_bytes(BLOCK_SIZES[cmd.p1])
            self._mgmt_challenge = (cmd.p1, challenge)
            return encode_tlv(0x7C, encode_tlv(0x81, challenge)), SW.SUCCESS
        key = self._card.management_key
        if (len(inner) == 1 and inner[0][0] == 0x82 and outstanding is not None and outstanding[0] == cmd.p1
                and cmd.p1 == key.algorithm
                and hmac.compare_digest(key.encrypt_block(outstanding[1]), inner[0][1])):
            self._admin = True
            return b"", SW.SUCCESS
        self._admin = False
        return b"", SW.SECURITY_STATUS_NOT_SATISFIED

    # --- GENERATE ASYMMETRIC KEY PAIR, PUT DATA ----------------------------------------------------------

    def _generate(self, cmd: CommandApdu) -> Reply:
        if cmd.p1 != 0x00:
            return b"", SW.INCORRECT_P1P2
        if cmd.p2 != KEY_PIV_AUTH:
            return b"", SW.REFERENCE_NOT_FOUND
        if not self._admin:
            return b"", SW.SECURITY_STATUS_NOT_SATISFIED
        try:
            alg = tlv_map(parse_single(cmd.data, 0xAC).value).get(0x80, b"")
        except TlvError:
            return b"", SW.INCORRECT_DATA
        name = ALG_NAMES.get(alg[0]) if len(alg) == 1 else None
        if name is None:
            return b"", SW.INCORRECT_DATA
        card = self._card
        before = (card.private_key, card.algorithm, card.certificate_pending)
        key = generate_key(name)
        card.private_key, card.algorithm, card.certificate_pending = key, name, True
        if not self._persist_keys(before, card.certificate):
            return b"", SW.MEMORY_FAILURE
        self._alg = ALG_OF[name]
        self._signer = CardSigner(key)
        log.info("training card generated a new %s key in slot 9A", name)
        return encode_tlv(0x7F49, _public_template(key)), SW.SUCCESS

    def _put_data(self, cmd: CommandApdu) -> Reply:
        if (cmd.p1, cmd.p2) != (0x3F, 0xFF):
            return b"", SW.INCORRECT_P1P2
        if not self._admin:
            return b"", SW.SECURITY_STATUS_NOT_SATISFIED
        try:
            parts = parse_tlvs(cmd.data)
            if [t.tag for t in parts] != [0x5C, 0x53]:
                return b"", SW.INCORRECT_DATA
            fields = tlv_map(parts[1].value)
        except TlvError:
            return b"", SW.INCORRECT_DATA
        if int.from_bytes(parts[0].value, "big") != TAG_CERT_PIV_AUTH or len(parts[0].value) != 3:
            return b"", SW.FUNCTION_NOT_SUPPORTED  # the training card stores only the PIV Authentication certificate
        der, info = fields.get(0x70), fields.get(0x71, b"\x00")
        if not der or info != b"\x00":
            return b"", SW.INCORRECT_DATA
        try:
            certificate = x509.load_der_x509_certificate(der)
            matches = certificate.public_key() == self._card.private_key.public_key()
        except ValueError:
            return b"", SW.INCORRECT_DATA
        if not matches:
            return b"", SW.INCORRECT_DATA
        card = self._card
        before = (card.private_key, card.algorithm, card.certificate_pending)
        old_certificate = card.certificate
        card.certificate, card.certificate_pending = certificate, False
        if not self._persist_keys(before, old_certificate):
            return b"", SW.MEMORY_FAILURE
        self._objects = data_objects(card)
        log.info("training card stored a new PIV Authentication certificate")
        return b"", SW.SUCCESS

    def _persist_keys(self, before: tuple[PrivateKey, str, bool], certificate: x509.Certificate) -> bool:
        """Persist a new key or certificate; if that fails, put back what the card had (``before`` and
        ``certificate``) and say so."""
        try:
            self._persist(self._card)
        except Exception:
            log.exception("could not persist the training card's key or certificate")
            c = self._card
            c.private_key, c.algorithm, c.certificate_pending = before
            c.certificate = certificate
            return False
        return True


def _public_template(key: PrivateKey) -> bytes:
    """The value of 7F49: ``81 modulus, 82 exponent`` (RSA) or ``86 uncompressed point`` (EC)."""
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        numbers = public.public_numbers()
        return (encode_tlv(0x81, numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big"))
                + encode_tlv(0x82, numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")))
    point = public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return encode_tlv(0x86, point)


def _tries_sw(left: int) -> int:
    return SW.VERIFY_FAILED | min(max(left, 0), 15)


def _two_blocks(data: bytes) -> tuple[bytes | None, bytes | None]:
    if len(data) != 16:
        return None, None
    return unpad_pin(data[:8]), unpad_pin(data[8:])
