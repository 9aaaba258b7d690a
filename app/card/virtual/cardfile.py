"""The training card's file: its holder, key and certificate, CHUID data, PIN/PUK and retry counters.

The file is JSON tagged ``"format": "spinedesk-training-card/1"``. It is written atomically (a 0600
temporary file, fsync, ``os.replace``) every time a retry counter or a PIN changes, so a card blocked by
wrong PINs stays blocked across restarts.

PIN and PUK are kept only as salted PBKDF2-HMAC-SHA256 hashes over the unpadded digits (16 random salt bytes,
iteration count stored in the file). :data:`DEFAULT_ITERATIONS` is 2,000: one hash measured ~0.6 ms on the
development machine (1,000 → 0.3 ms, 4,000 → 1.45 ms), so a VERIFY stays within ~1 ms. That is far
weaker than a password hash, deliberately: the same file holds the card's private key in clear (protected
only by its 0600 mode), so anyone who can read it can sign without the PIN anyway. The hash only keeps the
PIN digits out of the file, logs and backups (people reuse PINs); the retry counter is what protects a
training card's PIN.
"""

from __future__ import annotations

import binascii
import contextlib
import datetime as dt
import json
import logging
import os
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from app.card.management_key import ManagementKey
from app.errors import CardFileError

from .fascn import fascn_is_valid
from .pin import DEFAULT_ITERATIONS, PIN_PAD, SecretHash, check_pin_format, check_puk_format, hex_field

log = logging.getLogger(__name__)

FORMAT = "spinedesk-training-card/1"
ALGORITHMS = ("rsa2048", "p256")
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


# --- the card file -----------------------------------------------------------------------------------------


@dataclass(eq=False)
class CardFile:
    """Everything a training card holds. Mutable: the applet changes counters and PINs, then persists."""

    holder_name: str
    card_uuid: uuid.UUID
    fascn: bytes
    algorithm: str
    private_key: PrivateKey = field(repr=False)
    certificate: x509.Certificate = field(repr=False)
    chuid_expiry: dt.date
    pin_hash: SecretHash = field(repr=False)
    puk_hash: SecretHash = field(repr=False)
    pin_tries_left: int = 3
    pin_tries_max: int = 3
    puk_tries_left: int = 3
    puk_tries_max: int = 3
    management_key: ManagementKey = field(default_factory=ManagementKey.training, repr=False)
    # True between GENERATE ASYMMETRIC KEY PAIR and the PUT DATA that stores the new key's certificate: the card then
    # still serves the old certificate, which no longer matches its key (as a real PIV card does)
    certificate_pending: bool = False

    @classmethod
    def create(cls, *, holder_name: str, card_uuid: uuid.UUID, fascn: bytes, private_key: PrivateKey,
               certificate: x509.Certificate, chuid_expiry: dt.date, pin: str | bytes, puk: str | bytes,
               iterations: int = DEFAULT_ITERATIONS) -> CardFile:
        """A new card with full retry counters.

        Raises ``ValueError`` (inconsistent key/certificate/FASC-N) or :class:`InvalidPinFormat`.
        """
        card = cls(holder_name, card_uuid, bytes(fascn), _algorithm_of(private_key), private_key, certificate,
                   chuid_expiry, SecretHash.of(check_pin_format(pin), iterations),
                   SecretHash.of(check_puk_format(puk), iterations))
        card.validate()
        return card

    # PIN / PUK -------------------------------------------------------------------------------------------

    @property
    def pin_blocked(self) -> bool:
        return self.pin_tries_left <= 0

    @property
    def puk_blocked(self) -> bool:
        return self.puk_tries_left <= 0

    def check_pin(self, pin: bytes | str) -> bool:
        """Whether ``pin`` (the digits, 0xFF padding tolerated) is this card's PIN. Counters untouched."""
        return self.pin_hash.matches(_digits(pin))

    def check_puk(self, puk: bytes | str) -> bool:
        return self.puk_hash.matches(_digits(puk))

    def set_pin(self, pin: str | bytes) -> None:
        """Store a new PIN, rehashed with a fresh salt; :class:`InvalidPinFormat` unless 6-8 digits."""
        self.pin_hash = SecretHash.of(check_pin_format(pin), self.pin_hash.iterations)

    def set_puk(self, puk: str | bytes) -> None:
        self.puk_hash = SecretHash.of(check_puk_format(puk), self.puk_hash.iterations)

    # validation and persistence ----------------------------------------------------------------------------

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first inconsistency (used by :meth:`load` and :meth:`create`)."""
        if not self.holder_name.strip():
            raise ValueError("the holder name is empty")
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm {self.algorithm!r} is not one of {', '.join(ALGORITHMS)}")
        if _algorithm_of(self.private_key) != self.algorithm:
            raise ValueError(f"the private key is not a {self.algorithm} key")
        if len(self.fascn) != 25 or not fascn_is_valid(self.fascn):
            raise ValueError("the FASC-N is not a valid 25-byte FASC-N")
        if self.certificate.public_key() != self.private_key.public_key() and not self.certificate_pending:
            raise ValueError("the certificate does not match the private key")
        for name in ("pin", "puk"):
            left, most = getattr(self, f"{name}_tries_left"), getattr(self, f"{name}_tries_max")
            if type(most) is not int or not 1 <= most <= 15:
                raise ValueError(f"'{name}_tries_max' must be a whole number from 1 to 15")
            if type(left) is not int or not 0 <= left <= most:
                raise ValueError(f"'{name}_tries_left' must be a whole number from 0 to {name}_tries_max")

    def to_json(self) -> dict[str, Any]:
        key_pem = self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        return {
            "format": FORMAT,
            "holder_name": self.holder_name,
            "card_uuid": str(self.card_uuid),
            "fascn": self.fascn.hex(),
            "algorithm": self.algorithm,
            "private_key": key_pem.decode("ascii"),
            "certificate": self.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
            "chuid_expiry": self.chuid_expiry.isoformat(),
            "pin": self.pin_hash.to_json(),
            "puk": self.puk_hash.to_json(),
            "pin_tries_left": self.pin_tries_left,
            "pin_tries_max": self.pin_tries_max,
            "puk_tries_left": self.puk_tries_left,
            "puk_tries_max": self.puk_tries_max,
            "management_key": {"algorithm": self.management_key.name, "key": self.management_key.key.hex()},
            "certificate_pending": self.certificate_pending,
        }

    @classmethod
    def from_json(cls, doc: Any) -> CardFile:
        """Build and validate a card from parsed JSON; raises ``ValueError`` with a readable problem."""
        if not isinstance(doc, dict):
            raise ValueError("not a Spine Desk training card file (the JSON is not an object)")
        if doc.get("format") != FORMAT:
            raise ValueError(f"not a Spine Desk training card file (format is {doc.get('format')!r}, "
                             f"expected {FORMAT!r})")
        card = cls(
            holder_name=_get(doc, "holder_name", str),
            card_uuid=_parse(doc, "card_uuid", uuid.UUID),
            fascn=hex_field(_get(doc, "fascn", str), "fascn"),
            algorithm=_get(doc, "algorithm", str),
            private_key=_load_key(_get(doc, "private_key", str)),
            certificate=_load_cert(_get(doc, "certificate", str)),
            chuid_expiry=_parse(doc, "chuid_expiry", dt.date.fromisoformat),
            pin_hash=SecretHash.from_json("pin", doc.get("pin")),
            puk_hash=SecretHash.from_json("puk", doc.get("puk")),
            pin_tries_left=_get(doc, "pin_tries_left", int),
            pin_tries_max=_get(doc, "pin_tries_max", int),
            puk_tries_left=_get(doc, "puk_tries_left", int),
            puk_tries_max=_get(doc, "puk_tries_max", int),
            management_key=_management_key(doc.get("management_key")),
            certificate_pending=doc.get("certificate_pending", False) is True,
        )
        card.validate()
        return card

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CardFile:
        """Read and validate a card file; any problem raises :class:`CardFileError` saying what is wrong."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CardFileError(str(path), "the file does not exist") from None
        except IsADirectoryError:
            raise CardFileError(str(path), "it is a folder, not a card file") from None
        except UnicodeDecodeError:
            raise CardFileError(str(path), "the file is not text (not a training card file)") from None
        except OSError as exc:
            raise CardFileError(str(path), f"the file cannot be read ({exc.strerror or exc})") from None
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CardFileError(str(path), f"the file is not valid JSON (line {exc.lineno}, column "
                                           f"{exc.colno}: {exc.msg})") from None
        try:
            card = cls.from_json(doc)
        except ValueError as exc:
            raise CardFileError(str(path), str(exc)) from None
        with contextlib.suppress(OSError):
            if path.stat().st_mode & 0o077:
                log.warning("training card file %s is readable by other users; it holds a private key", path)
        return card

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically: 0600 temporary file beside ``path``, fsync, ``os.replace``, fsync the folder."""
        path = Path(path)
        data = (json.dumps(self.to_json(), indent=2) + "\n").encode("utf-8")
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise CardFileError(str(path), f"the file cannot be written ({exc.strerror or exc})") from exc
        _fsync_dir(path.parent)


# --- helpers -----------------------------------------------------------------------------------------------


def _digits(value: bytes | str) -> bytes:
    raw = value.encode("ascii", "replace") if isinstance(value, str) else bytes(value)
    return raw.rstrip(bytes([PIN_PAD]))


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _algorithm_of(key: object) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size == 2048 and key.private_numbers().public_numbers.e == 65537:
            return "rsa2048"
        return f"rsa{key.key_size}"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "p256" if isinstance(key.curve, ec.SECP256R1) else key.curve.name
    return type(key).__name__


def _get(doc: dict[str, Any], name: str, kind: type) -> Any:
    if name not in doc:
        raise ValueError(f"the field '{name}' is missing")
    value = doc[name]
    if type(value) is not kind:
        raise ValueError(f"the field '{name}' must be a {'whole number' if kind is int else 'string'}")
    return value


def _parse(doc: dict[str, Any], name: str, parser: Any) -> Any:
    text = _get(doc, name, str)
    try:
        return parser(text)
    except ValueError as exc:
        raise ValueError(f"the field '{name}' is not valid ({exc})") from None


def _management_key(value: Any) -> ManagementKey:
    """The card's management key; cards issued before the field existed have the training default."""
    if value is None:
        return ManagementKey.training()
    if not isinstance(value, dict) or not isinstance(value.get("algorithm"), str):
        raise ValueError("'management_key' must name its algorithm (aes128 or 3des) and hold its key in hex")
    try:
        return ManagementKey.named(value["algorithm"], hex_field(value.get("key"), "management_key.key"))
    except ValueError as exc:
        raise ValueError(f"the field 'management_key' is not valid ({exc})") from None


def _load_key(pem: str) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    except (ValueError, TypeError, UnicodeEncodeError, binascii.Error) as exc:
        raise ValueError(f"the private key cannot be read ({exc})") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError("the private key is neither RSA nor EC")
    return key


def _load_cert(pem: str) -> x509.Certificate:
    try:
        data = pem.encode("ascii")
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(bytes.fromhex(pem))
    except (ValueError, UnicodeEncodeError) as exc:
        raise ValueError(f"the certificate cannot be read ({exc})") from None


@contextlib.contextmanager
def exclusive_use(path: Path) -> Iterator[None]:
    """Hold the card file for one inserting process: two processes serving the same card would each keep
    their own retry counters (doubling the PIN-guess budget, or un-blocking a blocked card)."""
    lock_path = Path(path).with_name(Path(path).name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise CardFileError(str(path), f"its lock file cannot be created ({exc.strerror})") from exc
    try:
        try:
            _lock_nonblocking(fd)
        except OSError as exc:
            raise CardFileError(str(path), "this card is already inserted by another process; pull it "
                                "there first") from exc
        yield
    finally:
        os.close(fd)


def _lock_nonblocking(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]  # msvcrt exists on Windows only
    else:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
