"""Certificate renewal on a PKCS#11 token whose module lets the user make keys (see docs/decisions/card-renewal.md).

Unlike a PIV slot, a token keeps the old key beside the new one: the new key pair is generated ON the token under a
new CKA_ID (private, sensitive, never extractable, for signing only), the new certificate is stored under that
CKA_ID, and only then are the old certificate and key removed. Until the new certificate is stored the old login
works unchanged, and :meth:`Pkcs11RenewableCard.discard_new_key` removes the new key after a failure. NHS-style
cards keep one login key and certificate, so the old pair is removed rather than left beside the new one.

This module uses the token's package-internal parts (its sessions, lock and error mapping in ``token.py``).
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pkcs11 import Attribute, CertificateType, KeyType, Mechanism, MechanismFlag, ObjectClass, TokenFlag
from pkcs11 import exceptions as p11

from app.card.backend import CardInfo
from app.card.piv import PinStatus
from app.card.pkcs11.token import Pkcs11Token
from app.errors import CardManagementRefused, CardProtocolError, PinRequired

log = logging.getLogger(__name__)

RA_RENEWS = "its certificate is renewed by its registration authority, not by Spine Desk"
# DER named-curve parameters (CKA_EC_PARAMS) for the curves a login card holds
_EC_PARAMS = {"secp256r1": bytes.fromhex("06082a8648ce3d030107"), "secp384r1": bytes.fromhex("06052b81040022")}
_KEY_PAIR_GEN = (Mechanism.RSA_PKCS_KEY_PAIR_GEN, Mechanism.EC_KEY_PAIR_GEN)
_CURVES = {"secp256r1": ec.SECP256R1(), "secp384r1": ec.SECP384R1()}
# what the token refusing a key template or mechanism looks like: nothing was made
_REFUSED = (p11.TemplateIncomplete, p11.TemplateInconsistent, p11.AttributeValueInvalid, p11.AttributeTypeInvalid,
            p11.AttributeReadOnly, p11.MechanismInvalid, p11.MechanismParamInvalid, p11.FunctionNotSupported,
            p11.KeySizeRange, p11.DomainParamsInvalid, p11.SessionReadOnly, p11.TokenWriteProtected,
            p11.DeviceMemory, p11.FunctionFailed)


def renewal_refusal(flags: int, mechanisms: dict[Any, Any], public_key: object) -> str | None:
    """Why a token cannot renew a login key like ``public_key`` (None when it can): ``flags`` are the token's,
    ``mechanisms`` maps each key-pair generation mechanism the slot lists to its ``MechanismInfo``."""
    if flags & TokenFlag.WRITE_PROTECTED:
        return "the card is write-protected"
    if isinstance(public_key, rsa.RSAPublicKey):
        mechanism, size, what = Mechanism.RSA_PKCS_KEY_PAIR_GEN, public_key.key_size, f"RSA-{public_key.key_size}"
        if not 2048 <= size <= 4096:
            return f"Spine Desk renews RSA keys of 2048 to 4096 bits, this card's has {size}"
    elif isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(public_key.curve, ec.SECP256R1):
        mechanism, size, what = Mechanism.EC_KEY_PAIR_GEN, 256, "P-256"
    else:
        return "Spine Desk renews RSA and P-256 login keys only"
    info = mechanisms.get(mechanism)
    if info is None or not info.flags & MechanismFlag.GENERATE_KEY_PAIR:
        return "its PKCS#11 module does not generate key pairs on the card"
    low, high = info.min_key_length, info.max_key_length
    if (low and size < low) or (high and size > high):
        return f"its PKCS#11 module does not generate {what} keys (it makes {low} to {high} bits)"
    return None


def renewable_token(token: object) -> Pkcs11RenewableCard:
    """``token`` as a card this client may renew, or :class:`CardManagementRefused` saying why not (the
    registration authority renews it)."""
    if not isinstance(token, Pkcs11Token):
        raise CardManagementRefused(f"this card is reached through PKCS#11; {RA_RENEWS}")
    public_key = x509.load_der_x509_certificate(token.certificate_der()).public_key()
    with token._calls("read what the card can do"):
        flags = int(token._slot.get_token().flags)
        gen = {m: token._slot.get_mechanism_info(m) for m in _KEY_PAIR_GEN if m in token._mechanisms}
    why = renewal_refusal(flags, gen, public_key)
    if why is not None:
        raise CardManagementRefused(f"this card cannot make its own new key ({why}); {RA_RENEWS}")
    return Pkcs11RenewableCard(token)


class Pkcs11RenewableCard:
    """A :class:`Pkcs11Token` whose login key and certificate this client may replace (``RenewableCard``)."""

    def __init__(self, token: Pkcs11Token) -> None:
        self._token = token
        self._new_id: bytes | None = None  # the CKA_ID of the key pair generate_key made, until it is committed
        self._new_public: Any = None  # its public key (cryptography)
        self._old_id: bytes | None = None
        self._old_removed = False

    # --- the login token, unchanged ---------------------------------------------------------------------

    @property
    def info(self) -> CardInfo:
        return self._token.info

    def certificate_der(self) -> bytes:
        return self._token.certificate_der()

    def pin_status(self) -> PinStatus:
        return self._token.pin_status()

    def verify_pin(self, pin: str) -> None:
        self._token.verify_pin(pin)

    def sign(self, message: bytes) -> bytes:
        if self._new_id is None:
            return self._token.sign(message)
        with self._token._calls("sign with the new key"):  # the certificate request, before the certificate exists
            session = self._session()
            keys = list(session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.ID: self._new_id}))
            if not keys:
                raise CardProtocolError("the card no longer holds the key it has just made")
            return self._token._sign_with(keys[0], self._new_public, message)

    def forget_pin(self) -> None:
        self._token.forget_pin()

    def change_pin(self, old_pin: str, new_pin: str) -> None:
        self._token.change_pin(old_pin, new_pin)

    def unblock_pin(self, puk: str, new_pin: str) -> None:
        self._token.unblock_pin(puk, new_pin)

    def close(self) -> None:
        self._token.close()

    # --- renewal ----------------------------------------------------------------------------------------

    def _session(self) -> Any:
        session = self._token._user
        if session is None:
            raise PinRequired("the card needs the PIN before it changes its keys")
        if not session.rw:
            raise CardManagementRefused("the card opened only a read-only session, so it cannot store a new key")
        return session

    def generate_key(self) -> bytes:
        """A new key pair of the old one's type and size generated ON the token under a new CKA_ID (needs the PIN
        verified); its public key as DER SubjectPublicKeyInfo. The old key and certificate stay until
        :meth:`store_certificate` has stored the new certificate."""
        old = x509.load_der_x509_certificate(self.certificate_der()).public_key()
        token = self._token
        with token._calls("generate a new key on the card"):
            session = self._session()
            old_id = token._login.object_id
            label = _label(session, ObjectClass.PRIVATE_KEY, old_id)
            new_id = os.urandom(16)  # a fresh CKA_ID: the old pair keeps its own until the new one is stored
            private = {Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
                       Attribute.EXTRACTABLE: False, Attribute.SIGN: True, Attribute.DECRYPT: False,
                       Attribute.UNWRAP: False, Attribute.DERIVE: False}
            public: dict[Attribute, Any] = {Attribute.TOKEN: True, Attribute.PRIVATE: False, Attribute.VERIFY: True,
                                            Attribute.ENCRYPT: False, Attribute.WRAP: False}
            if isinstance(old, rsa.RSAPublicKey):
                key_type, length = KeyType.RSA, old.key_size
            else:
                assert isinstance(old, ec.EllipticCurvePublicKey)
                key_type, length = KeyType.EC, None
                public[Attribute.EC_PARAMS] = _EC_PARAMS[old.curve.name]
            try:
                pub, priv = session.generate_keypair(key_type, length, id=new_id, label=label, store=True,
                                                     capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
                                                     public_template=public, private_template=private)
            except (*_REFUSED, p11.UserNotLoggedIn) as exc:  # the last: a module that lets only its SO make keys
                raise CardManagementRefused(f"the card did not make a new key ({type(exc).__name__})") from None
            self._new_id = new_id
            try:
                kept = priv.get_attributes([Attribute.PRIVATE, Attribute.SENSITIVE, Attribute.EXTRACTABLE,
                                            Attribute.SIGN, Attribute.TOKEN])
                if kept != {Attribute.PRIVATE: True, Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False,
                            Attribute.SIGN: True, Attribute.TOKEN: True}:
                    raise CardManagementRefused("the card made a key that is not kept private and unreadable on "
                                                "the card as a login key must be")
                new_public = _public_key(pub, old)
            except BaseException:
                try:
                    self._destroy_new(session)
                except p11.PKCS11Error as exc:  # left with no certificate, the new pair is never used
                    log.warning("the refused new key could not be removed from the card (%s)", type(exc).__name__)
                raise
            self._old_id, self._new_public = old_id, new_public
        return new_public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    def store_certificate(self, certificate_der: bytes) -> None:
        """Store the new certificate under the new key's CKA_ID (needs the PIN verified), then remove the old
        certificate and, once it is gone, the old key pair. If the old certificate cannot be removed the new one is
        taken off again and the error raised: the card then logs in with its old certificate as before."""
        if self._new_id is None or self._new_public is None:
            raise CardProtocolError("the card has no new key to store a certificate for")
        try:
            certificate = x509.load_der_x509_certificate(certificate_der)
        except ValueError as exc:
            raise CardProtocolError(f"the new certificate is not valid DER ({exc})") from exc
        if certificate.public_key() != self._new_public:
            raise CardProtocolError("the new certificate is not for the key the card has just made")
        token = self._token
        with token._calls("store the new certificate on the card"):
            session = self._session()
            old_certs = list(session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE,
                                                  Attribute.ID: self._old_id}))
            label = _label(session, ObjectClass.CERTIFICATE, self._old_id)
            created = session.create_object({
                Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
                Attribute.TOKEN: True, Attribute.PRIVATE: False, Attribute.ID: self._new_id, Attribute.LABEL: label,
                Attribute.SUBJECT: certificate.subject.public_bytes(), Attribute.VALUE: certificate_der})
            try:
                for old in old_certs:
                    old.destroy()
            except BaseException:
                with contextlib.suppress(p11.PKCS11Error):
                    created.destroy()
                raise
            self._old_removed = True
            # the old certificate is gone, so the new one is the login certificate whatever happens next; an old
            # key left behind (a failure from here on) has no certificate and is never chosen for a login
            for cls in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY):
                try:
                    for key in list(session.get_objects({Attribute.CLASS: cls, Attribute.ID: self._old_id})):
                        key.destroy()
                except p11.PKCS11Error as exc:
                    log.warning("the old %s could not be removed from the card (%s)", cls.name.lower().replace(
                        "_", " "), type(exc).__name__)
            self._new_id = self._new_public = None
            token._reload_login()

    def discard_new_key(self, pin: str) -> bool:
        """After a failure before :meth:`store_certificate` finished: remove the new key pair (the PIN is verified
        for this and forgotten again). True: the card logs in with its old key and certificate as before (a new
        key that cannot be removed, card pulled, stays behind with no certificate and is never used)."""
        if self._old_removed:
            return False
        if self._new_id is None:
            return True
        token = self._token
        try:
            token.verify_pin(pin)
            try:
                with token._calls("remove the new key from the card"):
                    self._destroy_new(self._session())
            finally:
                token.forget_pin()
        except Exception as exc:  # the old login is intact whatever happens here
            log.warning("the new key could not be removed from the card (%s)", type(exc).__name__)
        return True

    def _destroy_new(self, session: Any) -> None:
        """Remove every object under the new CKA_ID, the certificate first (a certificate never outlives its key)."""
        new_id, self._new_id, self._new_public = self._new_id, None, None
        for cls in (ObjectClass.CERTIFICATE, ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY):
            for obj in list(session.get_objects({Attribute.CLASS: cls, Attribute.ID: new_id})):
                obj.destroy()


def _label(session: Any, cls: ObjectClass, object_id: bytes | None) -> str:
    """The CKA_LABEL of the old object of class ``cls`` (the new one takes it), "Login" when it has none."""
    with contextlib.suppress(p11.PKCS11Error):
        found = list(session.get_objects({Attribute.CLASS: cls, Attribute.ID: object_id}))  # no search left open
        if found:
            return str(found[0][Attribute.LABEL])
    return "Login"


def _public_key(pub: Any, old: object) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
    """The generated public key as ``cryptography`` reads it, checked to be of the old key's type and size."""
    try:
        if isinstance(old, rsa.RSAPublicKey):
            n = int.from_bytes(bytes(pub[Attribute.MODULUS]), "big")
            e = int.from_bytes(bytes(pub[Attribute.PUBLIC_EXPONENT]), "big")
            key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey = rsa.RSAPublicNumbers(e, n).public_key()
            if key.key_size != old.key_size:
                raise CardProtocolError(f"the card made an RSA-{key.key_size} key, not RSA-{old.key_size}")
            return key
        assert isinstance(old, ec.EllipticCurvePublicKey)
        point = bytes(pub[Attribute.EC_POINT])
        size = (old.curve.key_size + 7) // 8 * 2 + 1
        if len(point) != size:  # DER OCTET STRING around the point (PKCS#11 2.40), as most modules return it
            point = point[3:] if point[1] & 0x80 else point[2:]
        return ec.EllipticCurvePublicKey.from_encoded_point(_CURVES[old.curve.name], point)
    except (ValueError, IndexError, KeyError) as exc:
        raise CardProtocolError(f"the card's new public key could not be read ({type(exc).__name__})") from None
