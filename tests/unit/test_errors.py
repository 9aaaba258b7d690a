"""Every typed error turns into words that say what happened and what to do, in one place."""

from datetime import UTC, date, datetime

import pytest

from app import errors as e
from app.error_text import user_text

CASES = [
    (e.PcscUnavailable("x"), "pcscd"),
    (e.NoReader(), "Plug in your reader"),
    (e.NoReader("Virtual PCD 00 00"), "'Virtual PCD 00 00'"),
    (e.NoCard("Reader 1"), "Insert your smartcard"),
    (e.CardRemoved("x"), "insert the card again"),
    (e.CardInUse("x"), "Close other smartcard programs"),
    (e.NotPiv("x"), "not an NHS (PIV) smartcard"),
    (e.CardNotRecognised((("PIV", None),), pkcs11_configured=False),
     "does not answer PIV, and no PKCS#11 module is configured"),
    (e.CardNotRecognised((("PIV", None), ("PKCS#11", "/opt/a.so")), pkcs11_configured=True),
     "no token for it was found through the PKCS#11 module /opt/a.so"),
    (e.CardRetired("NHS series 4-6", date(2026, 5, 7)), "stopped accepting for logging in on 7 May 2026. Ask your "
     "registration authority for a new smartcard"),
    (e.CardNotRecognised((), pkcs11_configured=False), "cannot be used to log in: no PKCS#11 module is configured"),
    (e.PinIncorrect(2), "2 tries left"),
    (e.PinIncorrect(1), "1 try left"),
    (e.PinIncorrect(None), "does not say how many tries are left"),
    (e.Pkcs11ModuleError("/usr/lib/x/opensc-pkcs11.so", "the file does not exist", "opensc-pkcs11"),
     "Debian package 'opensc-pkcs11'"),
    (e.Pkcs11ModuleError("/opt/x/libclassicclient.so", "it cannot be loaded (bad ELF)",
                         "the card vendor's middleware that NHS supplies to your IT department"),
     "It comes with the card vendor's middleware that NHS supplies to your IT department."),
    (e.Pkcs11ModuleError("/opt/x/libz.so.1", "it is not a PKCS#11 module (it has no C_GetFunctionList)"),
     "/opt/x/libz.so.1 cannot be used: it is not a PKCS#11 module"),
    (e.NoLoginCertificate("Blank", "it holds no certificate"), "'Blank' cannot be used to log in: it holds no"),
    (e.SeveralCards(("A in Reader 1", "B in Reader 2")), "A in Reader 1, B in Reader 2"),
    (e.PinBlocked("x"), "registration authority"),
    (e.PukIncorrect(2), "unlock code (PUK) is wrong. You have 2 tries left"),
    (e.PukIncorrect(None), "does not say how many tries are left"),
    (e.PukBlocked("x"), "can no longer be unlocked here"),
    (e.InvalidPinFormat("a smartcard PIN has 6 to 8 digits"), "6 to 8 digits"),
    (e.PinRequired("x"), "re-insert"),
    (e.ApduError(0x6A80, "VERIFY"), "6A80"),
    (e.CardProtocolError("bad TLV"), "bad TLV"),
    (e.CardFileError("/tmp/c.json", "not JSON"), "Issue a new training card"),
    (e.CardManagementRefused("the card did not accept the management key"), "registration authority can renew"),
    (e.RenewalIncomplete("storing the new certificate on the card", e.CardRemoved("pulled")),
     "cannot log in: take it to your registration authority"),
    (e.RenewalIncomplete("asking the service for the new certificate", e.ServiceUnreachable("https://s", "refused"),
                         card_unchanged=True), "still logs in with its current certificate"),
    (e.CertificateRejected("expired"), "expired"),
    (e.CertificateRejected("revoked", "serial 5"), "serial 5"),
    (e.CertificateRejected("untrusted_issuer"), "not issued by an authority"),
    (e.RevocationInfoStale("'Issuing CA'", datetime(2026, 1, 2, 3, 4, tzinfo=UTC), ("/var/lib/x.crl",)),
     "publish a fresh CRL to /var/lib/x.crl"),
    (e.RevocationInfoStale("'Issuing CA'", None), "[trust] crls"),
    (e.CertificateIdentityMissing("serialNumber", "has no NHS user UUID in the subject's serialNumber"),
     "renew the card's certificates"),
    (e.ConfigError("/etc/x.toml", "bad url"), "/etc/x.toml"),
    (e.PlainHttpRefused("0.0.0.0", 8443, loopback=False, proxy=None, site_config="/etc/x.toml"),
     "--tls-cert FILE --tls-key FILE"),
    (e.PlainHttpRefused("0.0.0.0", 8443, loopback=False, proxy="https://p.test", site_config="/etc/x.toml"),
     "only for a service bound to loopback"),
    (e.PlainHttpRefused("127.0.0.1", 8443, loopback=True, proxy=None, site_config="/etc/x.toml"),
     "[service] tls_proxy"),
    (e.TlsFilesUnusable("/etc/s.pem", "/etc/s.key", "KEY_VALUES_MISMATCH"), "belongs to the certificate"),
    (e.ServiceUnreachable("https://spine.test", "connection refused"), "cannot be reached"),
    (e.ServiceRejected(401, "unknown-card", "this smartcard is not registered"), "did not accept your login"),
    (e.AudienceMismatch("https://spine.test", "https://elsewhere.test"), "before your PIN was used"),
    (e.ServiceRejected(403, "ACCESS_DENIED", "no access"), "ask your sponsor"),
    (e.ServiceRejected(409, "RESOURCE_VERSION_MISMATCH", "stale"), "409"),
    (e.NoRoleAvailable("no role profiles on this card's user"), "assign you a role"),
    (e.PatientNotFound("9434765919"), "943 476 5919"),
    (e.PatientNotFound("9434765919", invalidated=True), "invalidated"),
    (e.RecordChanged("9434765919"), "Reload the record"),
    (e.WesCheckUnavailable("the WES checker is not part of this build"), "compliance is unknown"),
    (OSError(13, "Permission denied"), "permissions"),
    (RuntimeError("boom"), "IT service desk"),
]


@pytest.mark.parametrize(("error", "phrase"), CASES)
def test_user_text(error, phrase):
    text = user_text(error)
    assert phrase in text
    assert text.endswith((".", ")")), text


def test_every_error_class_has_specific_text():
    generic = user_text(e.AppError("generic thing"))
    classes = [c for c in vars(e).values() if isinstance(c, type) and issubclass(c, e.AppError)]
    covered = {type(err) for err, _ in CASES}
    abstract = {e.AppError, e.CardError, e.PkiError, e.ServiceError}
    assert set(classes) - abstract <= covered, set(classes) - abstract - covered
    assert generic == "generic thing."
