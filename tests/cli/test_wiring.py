"""Shared objects of the composition root."""

from __future__ import annotations

import io
from pathlib import Path

from app.cli import wiring
from app.cli.service import seed
from app.config import Paths, Settings


def test_a_database_counts_as_seeded_once_seed_has_run(tmp_path: Path) -> None:
    with wiring.open_store(f"sqlite:///{tmp_path / 'service.db'}") as store:
        assert not wiring.is_seeded(store)
        seed(store, 3, 0, io.StringIO())
        assert wiring.is_seeded(store)


def test_the_service_database_defaults_to_a_private_folder(tmp_path: Path) -> None:
    settings = Settings(paths=Paths(tmp_path / "c", tmp_path / "data", tmp_path / "l", tmp_path / "none.toml"))
    assert wiring.service_database(settings, "sqlite:///elsewhere.db") == "sqlite:///elsewhere.db"
    assert wiring.service_database(settings) == f"sqlite:///{tmp_path / 'data' / 'service.db'}"
    assert (tmp_path / "data").stat().st_mode & 0o077 == 0


def test_has_display_reads_the_given_environment() -> None:
    import sys

    if sys.platform.startswith("linux"):
        assert not wiring.has_display({})
        assert wiring.has_display({"DISPLAY": ":0"})
