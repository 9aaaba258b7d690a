"""The application's error tree, and the one function that turns any error into words for a person.

Every layer raises these typed errors carrying the data a user needs (tries left, which reader, what was
wrong); nothing below the user interface formats messages for people. ``user_text`` is the single place
where an error becomes a sentence that says what happened and what to do next.
"""

from __future__ import annotations

from datetime import date, datetime

from app.nhs_number import display


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


# --- user text ----------------------------------------------------------------------------------------------

_SMARTCARD_HELP = "If the problem continues, contact your registration authority or IT service desk."

_CERT_TEXT = {
    "expired": "Your smartcard's certificate has expired. Your registration authority must renew it before "
    "you can log in.",
    "not_yet_valid": "Your smartcard's certificate is not valid yet. Check this computer's date and time; if "
    "they are right, contact your registration authority.",
    "revoked": "Your smartcard's certificate has been revoked and can no longer be used. Contact your "
    "registration authority for a new card.",
    "untrusted_issuer": "Your smartcard's certificate was not issued by an authority this service trusts. "
    "You may be using a card from another system or a training card on a live system.",
    "wrong_usage": "Your smartcard's certificate is not meant for logging in. Contact your registration "
    "authority.",
    "malformed": "Your smartcard's certificate could not be read. Try removing and re-inserting the card; "
    "if it happens again, contact your registration authority.",
}


def _not_recognised_text(tried: tuple[tuple[str, str | None], ...], pkcs11_configured: bool) -> str:
    said = []
    if any(kind == "PIV" for kind, _ in tried):
        said.append("it does not answer PIV")
    modules = [module for kind, module in tried if kind != "PIV" and module]
    if modules:
        said.append(f"no token for it was found through the PKCS#11 module{'s' if len(modules) > 1 else ''} "
                    f"{', '.join(modules)}")
    elif not pkcs11_configured:
        said.append("no PKCS#11 module is configured")
    what = ", and ".join(said) or "no card back-end recognised it"
    advice = ("ask IT to install the card's middleware and name it in the site configuration's [cards] "
              "pkcs11_modules" if not pkcs11_configured else
              "check it is your NHS smartcard, inserted the right way round; if it is, ask IT to check that the "
              "card's middleware is installed and named in the site configuration's [cards] pkcs11_modules")
    return f"This card cannot be used to log in: {what}. Remove it and {advice}."


def user_text(error: BaseException) -> str:
    """Say what went wrong and what to do about it, for any error, in plain English."""
    match error:
        case PcscUnavailable():
            return ("The smart card service (pcscd) is not running, so no card can be read. Ask IT to start "
                    "it (on Linux: 'systemctl start pcscd'), then try again.")
        case NoReader(reader=None):
            return "No smartcard reader is connected. Plug in your reader, then insert your card."
        case NoReader(reader=name):
            return f"The smartcard reader '{name}' is not connected. Plug it in, or choose another reader."
        case NoCard(reader=name):
            return f"There is no card in '{name}'. Insert your smartcard."
        case CardRemoved():
            return "The smartcard was removed. Nothing was changed; insert the card again to carry on."
        case CardInUse():
            return ("Another program is using the smartcard. Close other smartcard programs (or remove and "
                    "re-insert the card), then try again.")
        case NotPiv():
            return ("This card is not an NHS (PIV) smartcard and cannot be used to log in. Check you inserted "
                    "your NHS smartcard the right way round.")
        case CardNotRecognised(tried=tried, pkcs11_configured=configured):
            return _not_recognised_text(tried, configured)
        case CardRetired(family=family, since=since):
            return (f"This is an {family} smartcard, which NHS England stopped accepting for logging in on "
                    f"{since.day} {since:%B %Y}. Ask your registration authority for a new smartcard.")
        case PinIncorrect(tries_left=1):
            return ("Incorrect PIN. You have 1 try left: one more wrong PIN will lock your card, and you will "
                    "need your registration authority to unlock it.")
        case PinIncorrect(tries_left=None):
            return ("Incorrect PIN. The card does not say how many tries are left: take care, as too many wrong "
                    "PINs lock it.")
        case PinIncorrect(tries_left=n):
            return f"Incorrect PIN. You have {n} tries left."
        case PukIncorrect(tries_left=n):
            left = ("The card does not say how many tries are left" if n is None else
                    f"You have {n} {'try' if n == 1 else 'tries'} left before the unlock code is blocked too")
            return (f"That unlock code (PUK) is wrong. {left}. Check the code you were given; the PIN has not "
                    "changed.")
        case PukBlocked():
            return ("This smartcard's unlock code (PUK) is blocked after too many wrong tries, so the card can no "
                    "longer be unlocked here. Take it to your registration authority for a replacement.")
        case PinBlocked():
            return ("Your smartcard is locked after too many wrong PINs. Take it to your registration "
                    "authority (or a sponsor with unlock rights) to have it unlocked.")
        case InvalidPinFormat(reason=reason):
            return f"That PIN cannot be right: {reason}. Nothing was sent to the card; try again."
        case Pkcs11ModuleError(path=path, problem=problem, package=package):
            where = (f" It comes with {package}." if package and " " in package else
                     f" It comes with the Debian package '{package}' (ask IT to install it)." if package else "")
            return (f"The smartcard software (PKCS#11 module) {path} cannot be used: {problem}.{where} Until then "
                    "cards that need it cannot be read; ask IT to check the [cards] settings.")
        case NoLoginCertificate(token=token, detail=detail):
            return (f"The card '{token}' cannot be used to log in: {detail}. Check you inserted your NHS smartcard; "
                    f"if it is, your registration authority must renew its certificate. {_SMARTCARD_HELP}")
        case SeveralCards(cards=cards):
            return (f"More than one smartcard is present ({', '.join(cards)}). Remove the cards you are not using, "
                    "or choose the reader to use.")
        case PinRequired():
            return "The card needs your PIN again. Remove and re-insert your card, then log in."
        case ApduError(sw=sw, command=cmd):
            return (f"The smartcard refused the request ({cmd or 'command'}, status {sw:04X}). Remove and "
                    f"re-insert the card and try again. {_SMARTCARD_HELP}")
        case CardProtocolError():
            return (f"The smartcard sent an answer that could not be understood ({error}). Remove and "
                    f"re-insert the card and try again. {_SMARTCARD_HELP}")
        case RenewalIncomplete(step=step, cause=cause, card_unchanged=True):
            return (f"The certificate renewal stopped while {step} ({user_text(cause).rstrip('.')}). Your card is as "
                    "it was: it removed the new key and still logs in with its current certificate, which was not "
                    "revoked. Try again later, or ask your registration authority to renew the certificate.")
        case RenewalIncomplete(step=step, cause=cause):
            return (f"The certificate renewal stopped while {step} ({user_text(cause).rstrip('.')}). Your card already "
                    "has its new key but not yet a certificate for it, so it cannot log in: take it to your "
                    "registration authority (training: issue a new training card). Your old certificate was not "
                    "revoked.")
        case CardManagementRefused():
            return (f"The smartcard refused to change its key or certificate ({error}). Nothing else was changed; "
                    "your registration authority can renew the card's certificate instead.")
        case CardFileError(path=path, problem=problem):
            return f"The training card file {path} cannot be used: {problem}. Issue a new training card."
        case CertificateRejected(status=status, detail=detail):
            text = _CERT_TEXT.get(status, f"Your smartcard's certificate was rejected ({status}).")
            return f"{text} ({detail})" if detail else text
        case CertificateIdentityMissing(problem=problem):
            return (f"Your smartcard's certificate {problem}, so the service cannot tell who you are. Ask your "
                    "registration authority to renew the card's certificates.")
        case RevocationInfoStale(authority=authority, next_update=due, paths=paths):
            what = (f"the certificate revocation list (CRL) from {authority} was due to be replaced on "
                    f"{due:%Y-%m-%d %H:%M} UTC and no newer one has been published" if due else
                    f"there is no usable certificate revocation list (CRL) from {authority}")
            where = ", ".join(paths) or "the files named in the site configuration's [trust] crls"
            return (f"Revocation information is out of date: {what}, so no smartcard certificate it issued can be "
                    f"checked and nobody can log in with one. IT must publish a fresh CRL to {where}.")
        case ServiceUnreachable(url=url, detail=detail):
            return (f"The Spine service at {url} cannot be reached ({detail}). Check the network cable or "
                    "Wi-Fi, then try again; if it keeps happening, tell your IT service desk.")
        case AudienceMismatch(url=url, audience=audience):
            return (f"The service at {url} asked your smartcard to sign a login for another service ({audience}), so "
                    "the login was stopped before your PIN was used. Check the service address in the settings; if "
                    "it is right, tell your IT service desk at once: something may be impersonating the service.")
        case ServiceRejected(status=401, message=message):
            return f"The Spine service did not accept your login: {message}."
        case ServiceRejected(status=403, message=message):
            return f"The Spine service refused this: {message}. If you need this access, ask your sponsor."
        case ServiceRejected(status=status, code=code, message=message):
            return f"The Spine service could not do this ({status} {code}): {message}."
        case PatientNotFound(invalidated=True):
            return ("This patient's record has been invalidated on the Spine (for example a duplicate that was "
                    "removed). Search again by name and date of birth to find the current record.")
        case PatientNotFound(nhs_number=nhs):
            return (f"No patient has the NHS number {display(nhs)}. Check the number with the "
                    "patient, or search by name and date of birth.")
        case RecordChanged():
            return ("Someone else changed this patient's record after you opened it, so your change was not "
                    "saved. Reload the record to see the latest details, then make your change again.")
        case WesCheckUnavailable(detail=detail):
            return (f"The workstation check (WES) could not run ({detail}), so this computer's compliance is "
                    "unknown. Ask IT to check the Spine Desk installation.")
        case NoRoleAvailable(detail=detail):
            return f"You cannot work here yet: {detail}. Ask your registration authority to assign you a role."
        case PlainHttpRefused(host=host, port=port, loopback=loopback, proxy=proxy, site_config=site):
            certificate = (f"give the service its TLS certificate and key (--tls-cert FILE --tls-key FILE, or "
                           f"[service] tls_cert and tls_key in {site})")
            proxy_note = (f" (the proxy {proxy} named in {site} is only for a service bound to loopback)"
                          if proxy else "")
            if loopback:
                return (f"The service will not serve plain HTTP on {host}:{port} in production: no TLS-terminating "
                        f"proxy is named for it. Name the proxy in front of it in {site} as [service] tls_proxy = "
                        f"\"https://…\", or {certificate}. Nothing was started.")
            return (f"The service will not serve plain HTTP on {host}:{port} in production: patient data would "
                    f"cross the network unencrypted{proxy_note}. Either {certificate}, or bind it to loopback "
                    f"(--host 127.0.0.1) behind a TLS-terminating proxy named in {site} as [service] tls_proxy = "
                    f"\"https://…\". Nothing was started.")
        case TlsFilesUnusable(cert=cert, key=key, detail=detail):
            return (f"The service's TLS certificate {cert} and key {key} cannot be used ({detail}). Check that both "
                    "files exist and this user can read them, that they are PEM, that the key is not encrypted and "
                    "belongs to the certificate. Nothing was started.")
        case ConfigError(path=path, problem=problem):
            return f"The configuration file {path} is not valid: {problem}. Ask IT to correct it."
        case AppError():
            return f"{error}."
        case OSError():
            return f"A file or network operation failed: {error}. Check the path and permissions, then retry."
        case _:
            return (f"Something unexpected went wrong ({type(error).__name__}: {error}). Nothing was changed. "
                    "Please report this to your IT service desk.")
