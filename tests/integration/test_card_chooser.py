"""``card status`` and ``spinedesk login`` through the card chooser as the site configures it: the real pcscd with
the virtual PIV card, the real service in its own process; the commands run in this process with the [cards]
settings under test."""

from __future__ import annotations

import argparse
import io
from dataclasses import replace
from pathlib import Path

import pytest

from app.config import CardBackendName, Paths, Settings
from app.error_text import user_text
from app.errors import CardNotRecognised

from .conftest import PIN, READER0, spinedesk

pytestmark = pytest.mark.pcsc
OPENSC = Path("/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so")


def settings_for(env: dict[str, str], tmp_path: Path, *backends: CardBackendName,
                 modules: tuple[Path, ...] = ()) -> Settings:
    """Training-mode settings over the test's data folder (its training CA), with the [cards] under test."""
    paths = Paths(tmp_path / "config", Path(env["SPINEDESK_DATA_DIR"]), tmp_path / "log", tmp_path / "none.toml")
    return replace(Settings(paths=paths), card_backends=backends, pkcs11_modules=modules)


@pytest.fixture
def user_card(env, service, tmp_path):
    """A card issued by the service's training CA, registered with one role, as a file to insert."""
    _url, db = service
    card_file = tmp_path / "card.json"
    issued = spinedesk("card", "issue", "--out", str(card_file), "--name", "Dr Chooser", "--alg", "p256",
                       "--pin-stdin", env=env, input=PIN + "\n")
    assert issued.returncode == 0, issued.stderr
    for args in (("users", "add", "--id", "chooser", "--name", "Dr Chooser", "--card-file", str(card_file)),
                 ("users", "add-role", "--user", "chooser", "--urid", "chooser-clin", "--org", "A81001",
                  "--org-name", "Training Surgery", "--role", "S8000:G8000:R8000")):
        done = spinedesk("service", "--database", db, *args, env=env)
        assert done.returncode == 0, done.stderr
    return card_file


def card_status(settings: Settings, reader: str | None = READER0) -> str:
    from app.cli import card

    out = io.StringIO()
    assert card.run(argparse.Namespace(card_command="status", reader=reader), settings, stdout=out) == 0
    return out.getvalue()


def login(settings: Settings, url: str) -> str:
    from app.cli import login as login_command

    out = io.StringIO()
    args = argparse.Namespace(service_url=url, role=None, pin_stdin=True, reader=READER0, ca=None)
    assert login_command.run(args, settings, stdout=out, stdin=io.StringIO(PIN + "\n")) == 0
    return out.getvalue().strip()


def test_status_and_login_with_piv_only(pcscd, env, service, user_card, tmp_path, insert):
    url, _db = service
    settings = settings_for(env, tmp_path, CardBackendName.PIV)
    insert(user_card)
    text = card_status(settings)
    assert "Back-end      PIV\n" in text and "Card family   Spine Desk training card" in text
    assert "CN=Dr Chooser" in text and "3 tries left" in text and "Reader        Virtual PCD 00 00" in text
    assert login(settings, url)  # a session token
    from app.card.piv import PivSession

    with pcscd.connect(READER0) as conn:  # the login's token reset the card when closed: the PIN is forgotten
        session = PivSession(conn)
        session.select()
        assert not session.pin_status().verified and session.pin_status().tries_left == 3


def test_a_piv_card_with_only_pkcs11_configured_and_no_module_says_what_to_do(pcscd, env, tmp_path, insert,
                                                                               rsa_card):
    insert(rsa_card)
    with pytest.raises(CardNotRecognised) as err:
        card_status(settings_for(env, tmp_path, CardBackendName.PKCS11))
    assert "no PKCS#11 module is configured" in user_text(err.value)
    assert "[cards] pkcs11_modules" in user_text(err.value)


def test_status_and_login_through_opensc_pkcs11(pcscd, env, service, user_card, tmp_path, insert):
    pytest.importorskip("app.card.pkcs11", reason="the PKCS#11 back-end is not in this tree yet")
    if not OPENSC.exists():
        pytest.skip("OpenSC's PKCS#11 module is not installed (apt-get install opensc-pkcs11)")
    url, _db = service
    settings = settings_for(env, tmp_path, CardBackendName.PKCS11, modules=(OPENSC,))
    insert(user_card)
    text = card_status(settings)
    assert f"Back-end      PKCS#11 ({OPENSC})" in text and "CN=Dr Chooser" in text
    assert "Card family   Spine Desk training card" in text  # by the ATR PC/SC reports for the named reader
    assert "PIN           tries left not reported by the module" in text
    assert login(settings, url)
