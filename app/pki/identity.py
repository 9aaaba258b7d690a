"""Who a login certificate names: the NHS user UUID in its subject, or the card UUID of a training card.

NHS smartcard certificates name their holder by the 12-digit "user unique identifier" (UUID) printed on the card
(e.g. 555000111222), the ``uid`` of the person in NHS's directory. A renewed or replacement card has a new key and
a new certificate but the same UUID, so the service maps a login to a user by it (after the certificate has been
validated). Which subject attribute carries it is configured **per trust anchor** (site configuration ``[trust]
identity``; see docs/decisions/nhs-identity.md):

* ``serialNumber`` (OID 2.5.4.5), the default for every configured anchor;
* ``UID`` (OID 0.9.2342.19200300.100.1.1, the directory's ``uid``);
* ``san-uuid``: a ``urn:uuid:`` in the subject alternative name, as the training card's certificate carries (the
  default for the training CA's anchor). Its value is the card UUID, not an NHS user UUID.

Nothing here trusts anything: read an identity only from a certificate :func:`app.pki.validate` has accepted.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from app.errors import CertificateIdentityMissing, PkiError
from app.pki.validation import TrustStore, card_uuid

_NHS_UUID = re.compile(r"[0-9]{12}")


class IdentityAttribute(StrEnum):
    """Where a certificate names its holder; the values are what the site configuration accepts."""

    SERIAL_NUMBER = "serialNumber"
    UID = "UID"
    SAN_UUID = "san-uuid"

    @property
    def label(self) -> str:
        """How messages name it."""
        return {IdentityAttribute.SERIAL_NUMBER: "NHS user UUID in the subject's serialNumber",
                IdentityAttribute.UID: "NHS user UUID in the subject's UID",
                IdentityAttribute.SAN_UUID: "card UUID (urn:uuid) in the subject alternative name"}[self]

    @classmethod
    def parse(cls, text: object) -> IdentityAttribute:
        """Case-insensitive; ``ValueError`` naming the accepted values otherwise."""
        if isinstance(text, str):
            for member in cls:
                if member.value.casefold() == text.strip().casefold():
                    return member
        raise ValueError(f"{text!r} is not an identity attribute; use one of "
                         f"{', '.join(repr(m.value) for m in cls)}")


_OIDS = {IdentityAttribute.SERIAL_NUMBER: NameOID.SERIAL_NUMBER, IdentityAttribute.UID: NameOID.USER_ID}


def is_nhs_uuid(text: str) -> bool:
    return bool(_NHS_UUID.fullmatch(text))


def nhs_uuid(text: str) -> str:
    """``text`` as an NHS user UUID (surrounding spaces removed); ``PkiError`` saying what one looks like."""
    value = text.strip() if isinstance(text, str) else ""
    if not is_nhs_uuid(value):
        shown = text if isinstance(text, str) else repr(text)
        raise PkiError(f"'{shown}' is not an NHS user UUID: it must be exactly 12 digits, as printed on the "
                       "smartcard below the photograph (e.g. 555000111222)")
    return value


def subject_identity(cert: x509.Certificate, attribute: IdentityAttribute | str) -> str | None:
    """The identity ``cert`` carries where ``attribute`` says: a 12-digit NHS user UUID (``serialNumber``,
    ``UID``) or a lower-case card UUID (``san-uuid``). None when it carries none there.

    ``CertificateIdentityMissing`` when the attribute is present but unusable: not 12 digits, or two different
    values (a certificate must name one person)."""
    attribute = IdentityAttribute.parse(attribute) if not isinstance(attribute, IdentityAttribute) else attribute
    if attribute is IdentityAttribute.SAN_UUID:
        found = card_uuid(cert)
        return str(found).lower() if found else None
    try:
        values = {str(a.value).strip() for a in cert.subject.get_attributes_for_oid(_OIDS[attribute])}
    except ValueError as e:  # a subject cryptography cannot decode
        raise CertificateIdentityMissing(attribute.value, f"has a subject that cannot be read ({e})") from e
    if not values:
        return None
    if len(values) > 1:
        raise CertificateIdentityMissing(attribute.value, f"has {len(values)} different {attribute.value} values "
                                         "in its subject, so it does not name one person")
    (value,) = values
    if not is_nhs_uuid(value):
        raise CertificateIdentityMissing(attribute.value, f"has {attribute.value} {value[:40]!r} in its subject, "
                                         "which is not an NHS user UUID (12 digits)")
    return value


def require_identity(cert: x509.Certificate, attribute: IdentityAttribute | str) -> str:
    """:func:`subject_identity`, with ``CertificateIdentityMissing`` when the certificate carries none."""
    attribute = IdentityAttribute.parse(attribute) if not isinstance(attribute, IdentityAttribute) else attribute
    found = subject_identity(cert, attribute)
    if found is None:
        raise CertificateIdentityMissing(attribute.value, f"has no {attribute.label}")
    return found


def anchor_key(anchor: x509.Certificate) -> str:
    """How the policy recognises an anchor: the SHA-256 of its DER encoding (hex)."""
    return hashlib.sha256(anchor.public_bytes(Encoding.DER)).hexdigest()


@dataclass(frozen=True)
class IdentityPolicy:
    """Which attribute names the holder of a certificate that chains to each trust anchor; ``default`` for any
    anchor not listed."""

    default: IdentityAttribute = IdentityAttribute.SERIAL_NUMBER
    by_anchor: Mapping[str, IdentityAttribute] = field(default_factory=dict)  # anchor_key -> attribute

    def attribute_for(self, anchor: x509.Certificate | None) -> IdentityAttribute:
        if anchor is None:
            return self.default
        return self.by_anchor.get(anchor_key(anchor), self.default)

    @classmethod
    def for_anchors(cls, anchors: Iterable[x509.Certificate], attribute: IdentityAttribute,
                    default: IdentityAttribute = IdentityAttribute.SERIAL_NUMBER) -> IdentityPolicy:
        return cls(default, {anchor_key(a): attribute for a in anchors})

    @classmethod
    def from_files(cls, mapping: Iterable[tuple[Path | str, str]],
                   default: IdentityAttribute = IdentityAttribute.SERIAL_NUMBER) -> IdentityPolicy:
        """``(anchor file, attribute)`` pairs, as the site configuration's ``[trust] identity`` names them; every
        certificate in a file gets its attribute. ``PkiError`` for an unreadable file or unknown attribute."""
        by_anchor: dict[str, IdentityAttribute] = {}
        for path, name in mapping:
            try:
                attribute = IdentityAttribute.parse(name)
            except ValueError as e:
                raise PkiError(f"[trust] identity for {path}: {e}") from e
            for anchor in TrustStore.from_pem_files([Path(path)]).anchors:
                by_anchor[anchor_key(anchor)] = attribute
        return cls(default, by_anchor)
