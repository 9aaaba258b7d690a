"""The PKCS#11 login token and back-end (see the package docstring)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier
from pkcs11 import Attribute, CertificateType, Mechanism, ObjectClass, TokenFlag
from pkcs11 import exceptions as p11

from app.card.backend import BackendKind, CardFamily, CardInfo
from app.card.family import recognise
from app.card.pcsc import PcscConnection, PcscSystem
from app.card.piv import SHA256_DIGEST_INFO, PinStatus
from app.card.pkcs11.loader import LoadedModule, load_module
from app.errors import (
    CardError,
    CardRemoved,
    InvalidPinFormat,
    NoLoginCertificate,
    PinBlocked,
    PinIncorrect,
    PinRequired,
    PukBlocked,
    PukIncorrect,
    SeveralCards,
)

log = logging.getLogger(__name__)

SMARTCARD_LOGON = ObjectIdentifier("1.3.6.1.4.1.311.20.2.2")
LOGIN_EKUS = frozenset({ExtendedKeyUsageOID.CLIENT_AUTH, SMARTCARD_LOGON})
_REMOVED = (p11.DeviceRemoved, p11.TokenNotPresent)
_SESSION_LOST = (p11.SessionHandleInvalid, p11.SessionClosed)


def _tries_from_flags(flags: int) -> int | None:
    if flags & TokenFlag.USER_PIN_LOCKED:
        return 0
    if flags & TokenFlag.USER_PIN_FINAL_TRY:
        return 1
    return None


def _check_pin_text(pin: str, what: str = "PIN") -> None:
    """Refuse locally what no card takes; the card judges the rest (length, characters) itself."""
    if not pin:
        raise InvalidPinFormat(f"the {what} is empty")
    if any(not ch.isprintable() for ch in pin):
        raise InvalidPinFormat(f"the {what} contains characters that cannot be typed")


@dataclass(frozen=True, slots=True)
class _Candidate:
    object_id: bytes
    der: bytes
    certificate: x509.Certificate
    rank: tuple[int, ...]
    reasons: tuple[str, ...]


def _rank(object_id: bytes, der: bytes, key_ids: set[bytes]) -> _Candidate | None:
    """How well a certificate on the token suits logging in; None for one that cannot."""
    try:
        cert = x509.load_der_x509_certificate(der)
        public_key = cert.public_key()
    except ValueError:
        return None
    if not isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        return None
    if isinstance(public_key, ec.EllipticCurvePublicKey) and not isinstance(
            public_key.curve, ec.SECP256R1 | ec.SECP384R1):
        return None
    reasons: list[str] = []
    try:
        if cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return None
    except x509.ExtensionNotFound:
        pass
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if not usage.digital_signature:
            return None
        ku = 2
        reasons.append("key usage digitalSignature")
    except x509.ExtensionNotFound:
        ku = 1
        reasons.append("no key usage restriction")
    try:
        ekus = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
        eku = 2 if ekus & LOGIN_EKUS else 0
        reasons.append("EKU for login" if eku else "EKU not for login")
    except x509.ExtensionNotFound:
        eku = 1
        reasons.append("no EKU")
    paired = 1 if object_id in key_ids else 0
    if paired:
        reasons.append("signing key with the same CKA_ID")
    return _Candidate(object_id, der, cert, (eku, ku, paired), tuple(reasons))


def reset_pcsc_card(reader: str) -> None:
    """Reset the card in the PC/SC reader named ``reader``, so it forgets a PIN verified on it: OpenSC's C_Logout
    sends nothing to a PIV card, which would otherwise stay verified for every PC/SC program until reset or pulled.
    Nothing happens when PC/SC has no such reader (a software token) or no smart card service runs."""
    try:
        if reader not in PcscSystem().readers():
            return
        PcscConnection(reader).close(reset=True)
    except CardError as exc:  # the card is gone (then it forgot anyway) or pcscd is down
        log.debug("could not reset the card in %s after logout: %s", reader, type(exc).__name__)


def shown(text: str) -> str:
    """Text a token or its module supplies (label, slot description) as it may be shown or logged: control and
    other unprintable characters escaped, so a hostile token cannot drive a terminal or forge log lines."""
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)


def _describe(slot: Any, token: Any) -> str:
    return f"{shown(token.label.strip()) or 'unnamed token'} in {shown(slot.slot_description.strip())}"


class Pkcs11Token:
    """One token opened for a sign-in (see the package docstring). Not shared between threads' sign-ins."""

    settle = 1.0  # seconds to let the module notice a pulled card before a failure is reported as something else

    def __init__(self, module: LoadedModule, slot: Any, token: Any, *, atr: bytes = b"",
                 family_hint: CardFamily | None = None) -> None:
        self._module = module
        self._slot = slot
        self._token = token
        self._gone = False
        self._user: Any = None  # the session logged in with the PIN, None when the PIN is not verified
        self._pin_used = False  # a PIN went to the card since it was last made to forget
        self._closed = False
        with self._calls("open the card"):
            self._public = token.open()
            try:
                self._mechanisms = set(slot.get_mechanisms())
                self._login = self._choose()
            except BaseException:
                with contextlib.suppress(p11.PKCS11Error):
                    self._public.close()
                raise
        self._cert = self._login.certificate
        manufacturer = token.manufacturer_id.strip() or None
        model = token.model.strip() or None
        family = recognise(atr, manufacturer=manufacturer, model=model)
        if family is CardFamily.UNKNOWN and family_hint is not None:
            family = family_hint
        serial = bytes(token.serial).decode("ascii", "replace").strip() or None
        self._info = CardInfo(backend=BackendKind.PKCS11, family=family, reader=slot.slot_description.strip(),
                              atr=atr, module=module.path, token_label=token.label.strip() or None,
                              manufacturer=manufacturer, model=model, serial=serial)

    # --- the choice of certificate and key ------------------------------------------------------------------

    def _choose(self) -> _Candidate:
        session = self._public
        key_ids = {bytes(k[Attribute.ID]) for k in session.get_objects(
            {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.SIGN: True})}
        # a card that keeps its private keys private until login still shows the public half
        key_ids |= {bytes(k[Attribute.ID]) for k in session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY})}
        candidates = []
        count = 0
        for obj in session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE,
                                        Attribute.CERTIFICATE_TYPE: CertificateType.X_509}):
            count += 1
            candidate = _rank(bytes(obj[Attribute.ID]), bytes(obj[Attribute.VALUE]), key_ids)
            if candidate is not None:
                candidates.append(candidate)
        label = shown(self._token.label.strip()) or "the card"
        if not candidates:
            detail = ("it holds no certificate" if count == 0 else
                      f"none of its {count} certificates is meant for logging in (key usage digitalSignature)")
            raise NoLoginCertificate(label, detail)
        candidates.sort(key=lambda c: (tuple(-r for r in c.rank), c.object_id, hashlib.sha256(c.der).digest()))
        best = candidates[0]
        others = len(candidates) - 1
        self.choice = (f"login certificate CKA_ID {best.object_id.hex() or '(empty)'}: {', '.join(best.reasons)}"
                       + (f"; {others} other candidate(s) ranked lower or later by CKA_ID" if others else ""))
        log.info("%s: %s", label, self.choice)
        return best

    def _private_key(self, session: Any) -> Any:
        keys = list(session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.SIGN: True,
                                         Attribute.ID: self._login.object_id}))
        if not keys:
            raise NoLoginCertificate(shown(self._token.label.strip()) or "the card",
                                     "its login certificate has no private key that can sign")
        return keys[0]

    # --- errors ---------------------------------------------------------------------------------------------

    def _fresh_flags(self) -> int:
        with contextlib.suppress(p11.PKCS11Error):
            return int(self._slot.get_token().flags)
        return 0

    def _present(self) -> bool:
        """After a failure: whether the token is still there once the reader has had ``settle`` seconds to notice
        a card pulled mid-command (pcscd polls the reader; the module asks pcscd)."""
        deadline = time.monotonic() + self.settle
        while True:
            try:
                present = any(s.slot_id == self._slot.slot_id
                              for s in self._module.lib.get_slots(token_present=True))
            except p11.PKCS11Error:
                present = False
            if not present or time.monotonic() >= deadline:
                return present
            time.sleep(0.05)

    @contextlib.contextmanager
    def _calls(self, what: str, *, pin: bool = False) -> Iterator[None]:
        """Serialise calls into the module and turn PKCS#11 errors into the app's typed errors (``pin``: the call
        sends a PIN or PUK, so data the card calls invalid is the PIN's characters)."""
        if self._gone:
            raise CardRemoved("the card was removed; open it again")
        if self._closed:
            raise CardError("this card was closed after use; open it again")
        with self._module.lock:
            try:
                yield
            except p11.PinIncorrect:
                tries = _tries_from_flags(self._fresh_flags())
                if tries == 0:
                    raise PinBlocked() from None
                raise PinIncorrect(tries) from None
            except p11.PinLocked:
                raise PinBlocked() from None
            except (p11.PinLenRange, p11.PinInvalid) as exc:
                reason = ("the card does not accept a PIN of that length" if isinstance(exc, p11.PinLenRange)
                          else "the card does not accept those characters in a PIN")
                raise InvalidPinFormat(reason) from None
            except (p11.DataInvalid, p11.ArgumentsBad) as exc:
                if pin:  # OpenSC's PIV driver: the card refused the PIN's characters (no try was used)
                    raise InvalidPinFormat("the card does not accept those characters in a PIN") from None
                raise CardError(f"{what}: the card's PKCS#11 module said {type(exc).__name__}") from None
            except p11.UserNotLoggedIn:
                raise PinRequired("the card needs the PIN first") from None
            except _REMOVED:
                self._lost()
                raise CardRemoved(f"the card was removed during '{what}'") from None
            except _SESSION_LOST:
                if not self._present():
                    self._lost()
                    raise CardRemoved(f"the card was removed during '{what}'") from None
                self._user = None
                raise PinRequired(f"the card's session was closed during '{what}'") from None
            except p11.PKCS11Error as exc:
                if not self._present():
                    self._lost()
                    raise CardRemoved(f"the card was removed during '{what}'") from None
                raise CardError(f"{what}: the card's PKCS#11 module said {type(exc).__name__}") from None

    def _lost(self) -> None:
        """The card went: nothing on this object works any more (sessions are dropped, never half reused)."""
        self._gone = True
        self._user = None
        self._public = None

    # --- LoginToken -----------------------------------------------------------------------------------------

    @property
    def info(self) -> CardInfo:
        return self._info

    def certificate_der(self) -> bytes:
        return self._cert.public_bytes(serialization.Encoding.DER)

    def pin_status(self) -> PinStatus:
        with self._calls("read the PIN status"):
            flags = int(self._slot.get_token().flags)
        tries = _tries_from_flags(flags)
        return PinStatus(verified=self._user is not None, tries_left=tries, blocked=tries == 0)

    def verify_pin(self, pin: str) -> None:
        _check_pin_text(pin)
        with self._calls("verify the PIN", pin=True):
            if self._user is not None:
                self._close_user()
            # read/write: when C_Login fails the binding leaves the session it opened behind, and a read-only one
            # would stop a later security officer login (CKR_SESSION_READ_ONLY_EXISTS)
            self._pin_used = True  # a wrong PIN too: the card state is reset when forgetting, whatever happened
            try:
                self._user = self._token.open(rw=True, user_pin=pin)
            except p11.TokenWriteProtected:
                self._user = self._token.open(user_pin=pin)

    def sign(self, message: bytes) -> bytes:
        with self._calls("sign"):
            if self._user is None:
                raise PinRequired("the card needs the PIN before it signs")
            return self._sign_with(self._private_key(self._user), self._cert.public_key(), message)

    def _sign_with(self, key: Any, public_key: object, message: bytes) -> bytes:
        """``key`` (a private key object) signs as :meth:`sign` promises; called with the module's lock held."""
        if isinstance(public_key, rsa.RSAPublicKey):
            if Mechanism.SHA256_RSA_PKCS in self._mechanisms:
                return bytes(key.sign(message, mechanism=Mechanism.SHA256_RSA_PKCS))
            digest_info = SHA256_DIGEST_INFO + hashlib.sha256(message).digest()
            return bytes(key.sign(digest_info, mechanism=Mechanism.RSA_PKCS))
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        digest = (hashlib.sha384(message) if isinstance(public_key.curve, ec.SECP384R1)
                  else hashlib.sha256(message)).digest()
        raw = bytes(key.sign(digest, mechanism=Mechanism.ECDSA))
        half = len(raw) // 2
        return encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))

    def _reload_login(self) -> None:
        """Choose the login certificate again (after a renewal changed the card's objects); lock held."""
        self._login = self._choose()
        self._cert = self._login.certificate

    def forget_pin(self) -> None:
        """C_Logout (the login is the application's, so every session of ours forgets it), then, for a card in a
        PC/SC reader, a card reset: the card itself must forget the PIN (see :func:`reset_pcsc_card`)."""
        if self._gone or self._closed:
            return
        with self._calls("forget the PIN"):
            self._close_user()
            self._forget_on_card()

    def _forget_on_card(self) -> None:
        if self._pin_used:
            self._pin_used = False
            reset_pcsc_card(self._info.reader or "")

    def _close_user(self) -> None:
        user, self._user = self._user, None
        if user is not None:
            user.close()  # C_Logout + C_CloseSession

    def change_pin(self, old_pin: str, new_pin: str) -> None:
        """C_SetPIN in a read/write session."""
        _check_pin_text(old_pin)
        _check_pin_text(new_pin, "new PIN")
        with self._calls("change the PIN", pin=True):
            session = self._token.open(rw=True)
            try:
                session.set_pin(old_pin, new_pin)
            finally:
                with contextlib.suppress(p11.PKCS11Error):
                    session.close()

    def unblock_pin(self, puk: str, new_pin: str) -> None:
        """C_Login(CKU_SO, PUK) then C_InitPIN; the SO is logged out at once."""
        _check_pin_text(puk, "PUK")
        _check_pin_text(new_pin, "new PIN")
        with self._calls("unblock the PIN", pin=True):
            self._close_user()
            # the security officer cannot log in while a read-only session is open (CKR_SESSION_READ_ONLY_EXISTS)
            with contextlib.suppress(p11.PKCS11Error):
                self._public.close()
            try:
                try:
                    session = self._token.open(rw=True, so_pin=puk)
                except p11.PinIncorrect:  # the security officer's counter: a wrong PUK, not a wrong PIN
                    flags = self._fresh_flags()
                    if flags & TokenFlag.SO_PIN_LOCKED:
                        raise PukBlocked("the PUK is blocked") from None
                    raise PukIncorrect(1 if flags & TokenFlag.SO_PIN_FINAL_TRY else None) from None
                except p11.PinLocked:
                    raise PukBlocked("the PUK is blocked") from None
                except (p11.GeneralError, p11.FunctionNotSupported):
                    raise CardError("this card's PKCS#11 module cannot unblock the PIN with the PUK (it refused "
                                    "the security officer login)") from None
                try:
                    session.init_pin(new_pin)
                finally:
                    with contextlib.suppress(p11.PKCS11Error):
                        session.close()
            finally:
                self._public = self._token.open()

    def close(self) -> None:
        """Log out and close this token's sessions (never the module); later calls raise."""
        if self._gone or self._closed:
            return
        with self._module.lock:
            for session in (self._user, self._public):
                if session is not None:
                    with contextlib.suppress(p11.PKCS11Error):
                        session.close()
            self._user = self._public = None
            self._closed = True
            self._forget_on_card()


class Pkcs11Backend:
    """Cards behind one PKCS#11 module. ``open(reader)`` takes a slot description (OpenSC names slots after the
    PC/SC reader), a prefix of one, or a token label. ``family_hint``: the family to report for tokens that neither
    the ATR nor the token's manufacturer and model identify (a site that uses this module only for, say, NHS series 8
    cards)."""

    kind = BackendKind.PKCS11

    def __init__(self, module_path: str | os.PathLike[str], *, family_hint: CardFamily | None = None) -> None:
        self.module_path = os.fspath(module_path)
        self.family_hint = family_hint

    def open(self, reader: str | None, atr: bytes = b"") -> Pkcs11Token | None:
        module = load_module(self.module_path)
        with module.lock:
            try:
                slots = list(module.lib.get_slots(token_present=True))
            except p11.PKCS11Error as exc:
                raise CardError(f"{self.module_path} could not list its cards ({type(exc).__name__})") from None
            present = []
            for slot in slots:
                with contextlib.suppress(p11.TokenNotPresent, p11.DeviceRemoved):  # pulled since the listing
                    present.append((slot, slot.get_token()))
            tokens = [(s, t) for s, t in present if t.flags & TokenFlag.TOKEN_INITIALIZED]
            if reader is not None:  # a slot description (OpenSC: the PC/SC reader), a prefix of one, or a token label
                exact = [(s, t) for s, t in tokens if s.slot_description.strip() == reader]
                tokens = (exact or [(s, t) for s, t in tokens if s.slot_description.strip().startswith(reader)]
                          or [(s, t) for s, t in tokens if t.label.strip() == reader])
            if not tokens:
                return None
            if len(tokens) > 1:
                raise SeveralCards(tuple(_describe(s, t) for s, t in tokens))
            slot, token = tokens[0]
            return Pkcs11Token(module, slot, token, atr=atr, family_hint=self.family_hint)
