"""The one function that turns any error into words for a person: what happened and what to do next.

The errors themselves, with the data these sentences need, are in ``app.errors``.
"""

from __future__ import annotations

from app.errors import (
    ApduError,
    AppError,
    AudienceMismatch,
    CardFileError,
    CardInUse,
    CardManagementRefused,
    CardNotRecognised,
    CardProtocolError,
    CardRemoved,
    CardRetired,
    CertificateIdentityMissing,
    CertificateRejected,
    ConfigError,
    InvalidPinFormat,
    NoCard,
    NoLoginCertificate,
    NoReader,
    NoRoleAvailable,
    NotPiv,
    PatientNotFound,
    PcscUnavailable,
    PinBlocked,
    PinIncorrect,
    PinRequired,
    Pkcs11ModuleError,
    PlainHttpRefused,
    PukBlocked,
    PukIncorrect,
    RecordChanged,
    RenewalIncomplete,
    RevocationInfoStale,
    ServiceRejected,
    ServiceUnreachable,
    SeveralCards,
    TlsFilesUnusable,
    WesCheckUnavailable,
)
from app.nhs_number import display

# ----------------------------------------------------------------------------------------------

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
