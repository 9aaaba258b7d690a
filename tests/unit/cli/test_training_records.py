"""Training mode records its card's unblock code (the documented training PUK) for a Local Smartcard Unlocker, 0600
beside the training CA: when it issues the card, and for a card issued before codes were recorded."""

from __future__ import annotations

import stat
import uuid

from app.card.virtual import CardFile
from app.cli.training import TRAINING_PUK, ensure_card
from app.config import Paths
from app.pki.card_records import UNBLOCK_FILE, CardRecords


def _paths(tmp_path) -> Paths:
    return Paths(config_dir=tmp_path / "config", data_dir=tmp_path / "data", log_dir=tmp_path / "logs",
                 site_config_file=tmp_path / "site.toml")


def _code(paths: Paths, card_uuid: uuid.UUID) -> str | None:
    return CardRecords(paths.pki_dir).unblock_code(card_uuid)


def test_issuing_the_training_card_records_its_puk(tmp_path):
    paths = _paths(tmp_path)
    card = CardFile.load(ensure_card(paths, days=30))
    assert _code(paths, card.card_uuid) == TRAINING_PUK
    assert stat.S_IMODE((paths.pki_dir / UNBLOCK_FILE).stat().st_mode) == 0o600


def test_an_older_training_card_is_recorded_when_its_puk_is_still_the_documented_one(tmp_path):
    paths = _paths(tmp_path)
    path = ensure_card(paths, days=30)
    card = CardFile.load(path)
    (paths.pki_dir / UNBLOCK_FILE).unlink()  # as before unblock codes were recorded
    ensure_card(paths)
    assert _code(paths, card.card_uuid) == TRAINING_PUK


def test_a_changed_puk_is_not_recorded(tmp_path):
    paths = _paths(tmp_path)
    path = ensure_card(paths, days=30)
    card = CardFile.load(path)
    card.set_puk("24681357")
    card.save(path)
    (paths.pki_dir / UNBLOCK_FILE).unlink()
    ensure_card(paths)
    assert _code(paths, card.card_uuid) is None
