"""The application's error tree.

Every layer raises these typed errors carrying the data a user needs (tries left, which reader, what was
wrong); nothing below the user interface formats messages for people. ``app.error_text.user_text`` is the single
place where an error becomes a sentence that says what happened and what to do next.
"""

from __future__ import annotations

from datetime import date, datetime


class AppError(Exception):
    """Base of every error Spine Desk raises on purpose."""


# --- configuration ------------------------------------------------------------------------------------------


class ConfigError(AppError):
    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class PlainHttpRefused(AppError):
    """Production mode, and the service would serve plain HTTP where it is not known to sit behind a TLS proxy.

    ``loopback``: the address is loopback only (then naming the proxy is enough); ``proxy``: the proxy named in the
    site configuration (None: none); ``site_config``: the site configuration file where it would be named."""

    def __init__(self, host: str, port: int, *, loopback: bool, proxy: str | None, site_config: str) -> None:
        super().__init__(f"production service without TLS on {host}:{port}")
        self.host = host
        self.port = port
        self.loopback = loopback
        self.proxy = proxy
        self.site_config = site_config


class TlsFilesUnusable(AppError):
    """The service's TLS certificate and key cannot be loaded: missing, unreadable, not PEM, the key encrypted or
    not the certificate's. ``detail`` is what the TLS library said."""

    def __init__(self, cert: str, key: str, detail: str) -> None:
        super().__init__(f"TLS certificate {cert} and key {key}: {detail}")
        self.cert = cert
        self.key = key
        self.detail = detail


# --- smartcards ---------------------------------------------------------------------------------------------


class CardError(AppError):
    """Anything that went wrong between the application and a smartcard."""


class PcscUnavailable(CardError):
    """The PC/SC service (pcscd) is not running or cannot be reached."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or "the PC/SC service is not available")
        self.detail = detail


class NoReader(CardError):
    """No smartcard reader is connected (or the named one is not)."""

    def __init__(self, reader: str | None = None) -> None:
        super().__init__(f"no reader named {reader!r}" if reader else "no smartcard reader")
        self.reader = reader


class NoCard(CardError):
    """A reader is present but holds no card."""

    def __init__(self, reader: str) -> None:
        super().__init__(f"no card in {reader}")
        self.reader = reader


class CardRemoved(CardError):
    """The card was pulled (or reset by someone else) while we were talking to it."""


class CardInUse(CardError):
    """Another program holds the card exclusively."""


class NotPiv(CardError):
    """The card does not carry a PIV application, so it cannot be used to log in."""


class CardNotRecognised(CardError):
    """No configured card back-end recognised the card. ``tried`` lists each back-end asked, in order, as
    (kind, module): kind ``"PIV"`` or ``"PKCS#11"``, module the PKCS#11 module's path (None for PIV);
    ``pkcs11_configured``: whether any PKCS#11 module is named in the site configuration."""

    def __init__(self, tried: tuple[tuple[str, str | None], ...], *, pkcs11_configured: bool) -> None:
        names = ", ".join(kind if module is None else f"{kind} {module}" for kind, module in tried) or "nothing"
        super().__init__(f"no card back-end recognised the card (tried {names})")
        self.tried = tuple(tried)
        self.pkcs11_configured = pkcs11_configured


class CardRetired(CardError):
    """NHS England no longer accepts this family of cards for logging in (``family``: its name, e.g. "NHS series
    4-6"; ``since``: the day logins with it were blocked)."""

    def __init__(self, family: str, since: date) -> None:
        super().__init__(f"{family} cards are blocked for logging in since {since.isoformat()}")
        self.family = family
        self.since = since


class PinIncorrect(CardError):
    """``tries_left``: what the card says is left, or None when it does not tell (many PKCS#11 modules only flag the
    final try)."""

    def __init__(self, tries_left: int | None) -> None:
        super().__init__("wrong PIN, " + (f"{tries_left} tries left" if tries_left is not None else
                                          "tries left unknown"))
        self.tries_left = tries_left


class PinBlocked(CardError):
    """No PIN tries are left; the card needs unblocking with its PUK by a registration authority."""


class PukIncorrect(CardError):
    """The unlock code (PUK) was wrong; ``tries_left`` as the card says, None when it does not tell."""

    def __init__(self, tries_left: int | None) -> None:
        super().__init__("wrong unlock code (PUK), " + (f"{tries_left} tries left" if tries_left is not None else
                                                         "tries left unknown"))
        self.tries_left = tries_left


class PukBlocked(CardError):
    """The unlock code (PUK) itself is blocked: nothing on this workstation can unblock the card any more."""


class InvalidPinFormat(CardError):
    """The PIN typed cannot be a PIV PIN (6 to 8 characters); nothing was sent to the card."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PinRequired(CardError):
    """The card refused an operation because the PIN has not been verified in this session."""


class ApduError(CardError):
    """The card answered a command with a status word we did not expect."""

    def __init__(self, sw: int, command: str = "") -> None:
        super().__init__(f"{command or 'command'} failed with status {sw:04X}")
        self.sw = sw
        self.command = command


class CardProtocolError(CardError):
    """The card (or a command sent to a card) broke the protocol: malformed TLV, truncated response, bad APDU."""


class CardManagementRefused(CardError):
    """The card refused a card-management step (management key, key generation, certificate storage)."""


class RenewalIncomplete(CardError):
    """A certificate renewal stopped after the card made its new key and before it stored the new certificate: the
    card cannot log in until a registration authority gives it a certificate (its old one is not revoked), unless
    ``card_unchanged``: the card removed the new key and logs in with its old one as before (PKCS#11)."""

    def __init__(self, step: str, cause: BaseException, *, card_unchanged: bool = False) -> None:
        super().__init__(f"renewal stopped while {step}{', card unchanged' if card_unchanged else ''}: {cause}")
        self.step, self.cause, self.card_unchanged = step, cause, card_unchanged


class Pkcs11ModuleError(CardError):
    """A configured PKCS#11 module cannot be used: the file is missing, will not load, or is not a PKCS#11 module
    (no C_GetFunctionList). ``package``: what provides it (a Debian package name, or a sentence), None if unknown."""

    def __init__(self, path: str, problem: str, package: str | None = None) -> None:
        super().__init__(f"PKCS#11 module {path}: {problem}")
        self.path = path
        self.problem = problem
        self.package = package


class NoLoginCertificate(CardError):
    """The card (token) holds no certificate and key that can log in: ``detail`` says what was found."""

    def __init__(self, token: str, detail: str) -> None:
        super().__init__(f"{token}: {detail}")
        self.token = token
        self.detail = detail


class SeveralCards(CardError):
    """Several cards (tokens) are present and nothing says which one to use: ``cards`` names them."""

    def __init__(self, cards: tuple[str, ...]) -> None:
        super().__init__("several cards present: " + ", ".join(cards))
        self.cards = tuple(cards)


class CardFileError(CardError):
    """A training card file is missing, unreadable or damaged."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


# --- certificates -------------------------------------------------------------------------------------------


class PkiError(AppError):
    """Problems with certificates, the training CA or the trust store."""


class CertificateRejected(PkiError):
    """A certificate failed validation. ``status`` is a ``app.pki.Status`` value name (e.g. ``"expired"``)."""

    def __init__(self, status: str, detail: str = "") -> None:
        super().__init__(f"certificate {status}" + (f": {detail}" if detail else ""))
        self.status = status
        self.detail = detail


class CertificateIdentityMissing(PkiError):
    """A certificate does not name its holder where its trust anchor's identity attribute says it should (no NHS
    user UUID, or an unusable one). ``attribute``: the configured attribute (``serialNumber``, ``UID``,
    ``san-uuid``); ``problem``: what is wrong, as a predicate of "the certificate" ("has no …")."""

    def __init__(self, attribute: str, problem: str) -> None:
        super().__init__(f"the certificate {problem}")
        self.attribute = attribute
        self.problem = problem


class RevocationInfoStale(PkiError):
    """No current CRL from a certificate authority, so no certificate it issued can be checked for revocation.

    ``next_update``: when the newest CRL from it was due to be replaced (None: there is none, or it has no date);
    ``paths``: the CRL files where a fresh one must be published (empty: none is configured)."""

    def __init__(self, authority: str, next_update: datetime | None, paths: tuple[str, ...] = ()) -> None:
        due = f"due to be replaced on {next_update:%Y-%m-%d %H:%M} UTC" if next_update else "missing"
        super().__init__(f"revocation information from {authority} is out of date (its CRL is {due})")
        self.authority = authority
        self.next_update = next_update
        self.paths = tuple(paths)


# --- the Spine service, seen from the client -----------------------------------------------------------------


class ServiceError(AppError):
    """Talking to the Spine service failed."""


class ServiceUnreachable(ServiceError):
    def __init__(self, url: str, detail: str) -> None:
        super().__init__(f"{url}: {detail}")
        self.url = url
        self.detail = detail


class ServiceRejected(ServiceError):
    """The service answered with an error (an OperationOutcome or an auth refusal)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class AudienceMismatch(ServiceError):
    """The service asked the card to sign a login for another service (its challenge names another audience):
    the client refuses before the PIN is used, since the signature could be relayed to that service."""

    def __init__(self, url: str, audience: str) -> None:
        super().__init__(f"{url}: the login challenge is for {audience!r}")
        self.url = url
        self.audience = audience


class NoRoleAvailable(ServiceError):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class PatientNotFound(ServiceError):
    """PDS has no (current) record for this NHS number: unknown, or invalidated."""

    def __init__(self, nhs_number: str, invalidated: bool = False) -> None:
        super().__init__(f"patient {nhs_number} not found" + (" (invalidated)" if invalidated else ""))
        self.nhs_number = nhs_number
        self.invalidated = invalidated


class RecordChanged(ServiceError):
    """An update was refused because the record changed since it was read (PDS 409 RESOURCE_VERSION_MISMATCH)."""

    def __init__(self, nhs_number: str) -> None:
        super().__init__(f"patient {nhs_number} changed since it was read")
        self.nhs_number = nhs_number


# --- the workstation (WES) ----------------------------------------------------------------------------------


class WesCheckUnavailable(AppError):
    """The WES checker could not run, so compliance is unknown."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail
