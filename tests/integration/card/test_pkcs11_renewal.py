"""Certificate renewal of PKCS#11 tokens: SoftHSM2 (a real module that generates keys) as the card, the service in its
own process (training mode, its training CA), ``spinedesk card renew`` and ``spinedesk login`` run in this process
with the [cards] settings that name the module; OpenSC over the virtual PIV card as a module that cannot make keys."""

from __future__ import annotations

import argparse
import io
import logging
import uuid
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pkcs11 import Attribute, ObjectClass

from app.card.management_key import ManagementKey
from app.card.pkcs11 import Pkcs11Backend, load_module
from app.card.pkcs11.renewal import Pkcs11RenewableCard
from app.card.renewal import renewable
from app.client.client import SpineClient
from app.client.login import card_login
from app.client.selfservice import renew_certificate
from app.config import CardBackendName, Paths, Settings
from app.error_text import user_text
from app.errors import CardManagementRefused, CardProtocolError, RenewalIncomplete
from app.pki import TrainingCA
from tests.support.softhsm import LOGIN_ID, OTHER_ID, USER_PIN, Issued, SoftHsm, issue_certificates

from ..conftest import READER0, spinedesk

TOKEN = "Dr Token"


def _ca(env: dict) -> TrainingCA:
    return TrainingCA.load_or_create(Path(env["SPINEDESK_DATA_DIR"]) / "training-pki")


def _card(softhsm: SoftHsm, env: dict, db: str, alg: str, user: str) -> x509.Certificate:
    """A token holding a login key + certificate from the service's training CA (and a signing pair that renewal
    must leave alone), its holder registered by the card UUID with one role ``{user}-clin``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048) if alg == "rsa2048" else \
        ec.generate_private_key(ec.SECP256R1())
    card_uuid = uuid.uuid4()
    ca = _ca(env)
    cert = ca.issue_card_certificate(key.public_key(), name=f"Dr {user.title()}", card_uuid=card_uuid, days=30)
    softhsm.init_token(TOKEN)
    _, other = issue_certificates(alg)
    softhsm.write(TOKEN, other, OTHER_ID, "Signing")
    softhsm.write(TOKEN, Issued(key, cert, ca.issuing), LOGIN_ID, "Login")
    for args in (("users", "add", "--id", user, "--name", f"Dr {user.title()}", "--card-uuid", card_uuid.hex),
                 ("users", "add-role", "--user", user, "--urid", f"{user}-clin", "--org", "A81001", "--org-name",
                  "Training Surgery", "--role", "S8000:G8000:R8000")):
        done = spinedesk("service", "--database", db, *args, env=env)
        assert done.returncode == 0, done.stderr
    return cert


def _settings(env: dict, tmp_path: Path, module: Path) -> Settings:
    paths = Paths(tmp_path / "config", Path(env["SPINEDESK_DATA_DIR"]), tmp_path / "log", tmp_path / "none.toml")
    return replace(Settings(paths=paths), card_backends=(CardBackendName.PKCS11,), pkcs11_modules=(module,))


def _renew(settings: Settings, url: str, reader: str | None = None) -> str:
    from app.cli import card_selfservice

    out = io.StringIO()
    args = argparse.Namespace(card_command="renew", reader=reader, pin_stdin=True, service_url=url, ca=None)
    assert card_selfservice.run(args, settings, out, io.StringIO(USER_PIN + "\n")) == 0
    return out.getvalue()


def _login(settings: Settings, url: str, urid: str, capsys) -> str:
    from app.cli import login

    args = argparse.Namespace(service_url=url, role=urid, pin_stdin=True, reader=None, ca=None)
    capsys.readouterr()
    assert login.run(args, settings, stdout=io.StringIO(), stdin=io.StringIO(USER_PIN + "\n")) == 0
    return capsys.readouterr().err


def _objects(softhsm: SoftHsm) -> dict[str, set[bytes]]:
    """The CKA_IDs of the token's certificates, private and public keys (seen logged in)."""
    lib = load_module(softhsm.module).lib
    token = lib.get_token(token_label=TOKEN)
    with token.open(user_pin=USER_PIN) as session:
        return {name: {bytes(o[Attribute.ID]) for o in session.get_objects({Attribute.CLASS: cls})}
                for name, cls in (("certificates", ObjectClass.CERTIFICATE), ("private", ObjectClass.PRIVATE_KEY),
                                  ("public", ObjectClass.PUBLIC_KEY))}


@pytest.mark.parametrize("alg", ["p256", "rsa2048"])
def test_cli_renews_a_token_end_to_end(softhsm, env, service, tmp_path, capsys, caplog, alg):
    url, db = service
    old = _card(softhsm, env, db, alg, "renew")
    settings = _settings(env, tmp_path, softhsm.module)
    caplog.set_level(logging.DEBUG)
    said = _renew(settings, url)
    assert "new certificate" in said and USER_PIN not in said + capsys.readouterr().err + caplog.text

    token = Pkcs11Backend(softhsm.module).open(None)
    new = x509.load_der_x509_certificate(token.certificate_der())
    assert new.serial_number != old.serial_number and new.subject == old.subject
    assert type(new.public_key()) is type(old.public_key()) and new.public_key() != old.public_key()
    assert f"serial {new.serial_number:x}" in said
    objects = _objects(softhsm)
    new_id = next(i for i in objects["certificates"] if i != OTHER_ID)
    # one login pair, under a new CKA_ID: the old certificate and key are gone, the signing pair untouched
    assert new_id not in (LOGIN_ID, OTHER_ID)
    assert objects == {"certificates": {new_id, OTHER_ID}, "private": {new_id, OTHER_ID}, "public": {new_id, OTHER_ID}}
    lib = load_module(softhsm.module).lib
    with lib.get_token(token_label=TOKEN).open(user_pin=USER_PIN) as session:
        key = next(session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.ID: new_id}))
        assert key.get_attributes([Attribute.LOCAL, Attribute.PRIVATE, Attribute.SENSITIVE, Attribute.EXTRACTABLE,
                                   Attribute.NEVER_EXTRACTABLE, Attribute.SIGN]) == {
            Attribute.LOCAL: True, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False, Attribute.NEVER_EXTRACTABLE: True, Attribute.SIGN: True}  # made on the card
    token.close()

    assert "Logged in as Dr Renew" in _login(settings, url, "renew-clin", capsys)  # the same person, new certificate
    revoked = {entry.serial_number for entry in _ca(env).crl()}
    assert old.serial_number in revoked and new.serial_number not in revoked


def test_service_refusing_after_the_new_key_removes_it_and_the_old_login_works(softhsm, env, service, tmp_path,
                                                                               capsys):
    url, db = service
    old = _card(softhsm, env, db, "p256", "halfway")
    before = _objects(softhsm)
    card = renewable(Pkcs11Backend(softhsm.module).open(None), ManagementKey.training())
    assert isinstance(card, Pkcs11RenewableCard)
    with httpx.Client(timeout=30) as http:
        api = SpineClient(url, http)
        live = card_login(card, api, USER_PIN).token
        seen: list[dict[str, set[bytes]]] = []

        def step(text: str) -> None:
            if text == "Asking the service for the new certificate":
                seen.append(_objects(softhsm))  # the new key is on the card now
                api.logout(live)  # so the service refuses the request: the session has ended

        with pytest.raises(RenewalIncomplete) as caught:
            renew_certificate(card, api, USER_PIN, token=live, on_step=step)
    assert len(seen[0]["private"]) == 3 and before["private"] < seen[0]["private"]
    assert caught.value.card_unchanged
    text = user_text(caught.value)
    assert "asking the service for the new certificate" in text and "still logs in" in text
    assert _objects(softhsm) == before  # the new key is gone, the old pair untouched
    assert card.certificate_der() == old.public_bytes(serialization.Encoding.DER)
    card.close()
    settings = _settings(env, tmp_path, softhsm.module)
    assert "Logged in as Dr Halfway" in _login(settings, url, "halfway-clin", capsys)
    assert old.serial_number not in {entry.serial_number for entry in _ca(env).crl()}


def test_a_certificate_for_another_key_is_never_stored(softhsm, tmp_path):
    login, _ = issue_certificates("p256")
    softhsm.make_card(TOKEN, "p256")
    before = _objects(softhsm)
    card = renewable(Pkcs11Backend(softhsm.module).open(None), ManagementKey.training())
    card.verify_pin(USER_PIN)
    card.generate_key()
    with pytest.raises(CardProtocolError, match="not for the key"):
        card.store_certificate(login.certificate.public_bytes(serialization.Encoding.DER))
    card.forget_pin()
    assert card.discard_new_key(USER_PIN)
    assert _objects(softhsm) == before
    card.close()


def test_the_open_card_signs_with_its_new_key_once_the_certificate_is_stored(softhsm):
    """The desktop keeps the opened card after a renewal: from the new certificate on, it logs in with the new pair."""
    softhsm.make_card(TOKEN, "p256")
    card = renewable(Pkcs11Backend(softhsm.module).open(None), ManagementKey.training())
    old = x509.load_der_x509_certificate(card.certificate_der())
    card.verify_pin(USER_PIN)
    public = serialization.load_der_public_key(card.generate_key())
    assert card.certificate_der() == old.public_bytes(serialization.Encoding.DER)  # until the new one is stored
    ca_key = ec.generate_private_key(ec.SECP256R1())
    new = (x509.CertificateBuilder().subject_name(old.subject).issuer_name(old.issuer).public_key(public)
           .serial_number(x509.random_serial_number()).not_valid_before(old.not_valid_before_utc)
           .not_valid_after(old.not_valid_after_utc)
           .add_extension(old.extensions.get_extension_for_class(x509.KeyUsage).value, critical=True)
           .add_extension(old.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value, critical=False)
           .sign(ca_key, hashes.SHA256()))
    card.store_certificate(new.public_bytes(serialization.Encoding.DER))
    card.forget_pin()
    assert card.certificate_der() == new.public_bytes(serialization.Encoding.DER)
    card.verify_pin(USER_PIN)
    public.verify(card.sign(b"challenge"), b"challenge", ec.ECDSA(hashes.SHA256()))
    card.forget_pin()
    assert card.discard_new_key(USER_PIN) is False  # nothing to undo: the old pair is gone
    assert LOGIN_ID not in _objects(softhsm)["private"]
    card.close()


@pytest.mark.pcsc
def test_opensc_over_a_piv_card_cannot_make_keys_so_the_ra_renews_it(rsa_card, insert, env, tmp_path):
    """OpenSC's PIV driver lists no key-pair generation mechanism (and its token is not write-protected)."""
    from .test_pkcs11_opensc import module

    insert(rsa_card)
    opensc = module("opensc-pkcs11.so", "opensc-pkcs11")
    settings = _settings(env, tmp_path, opensc)
    with pytest.raises(CardManagementRefused) as refused:
        _renew(settings, "http://127.0.0.1:9", READER0)  # refused before any PIN reaches the card or the service
    text = user_text(refused.value)
    assert "does not generate key pairs" in text and "registration authority" in text


def test_the_desktop_composition_renews_a_token_that_makes_keys(softhsm):
    """The desktop's Session, Renew certificate gets its card from the same ``renewable`` as the command line."""
    from app.cli.desktop import training_renewable

    softhsm.make_card(TOKEN, "rsa2048")
    token = Pkcs11Backend(softhsm.module).open(None)
    card = training_renewable(token)
    assert isinstance(card, Pkcs11RenewableCard) and card.info is token.info
    assert card.certificate_der() == token.certificate_der()
    card.close()
