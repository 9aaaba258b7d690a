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


def _settings(tmp_path: Path, backends, modules=()) -> Settings:
    from dataclasses import replace

    base = Settings(paths=Paths(tmp_path / "c", tmp_path / "data", tmp_path / "l", tmp_path / "none.toml"))
    return replace(base, card_backends=tuple(backends), pkcs11_modules=tuple(Path(m) for m in modules))


def test_card_backends_follow_the_configured_order_one_per_pkcs11_module(tmp_path: Path, monkeypatch) -> None:
    import sys

    from app.card.backend import BackendKind
    from app.card.chooser import backend_module
    from app.config import CardBackendName as B

    monkeypatch.setitem(sys.modules, "app.card.pkcs11", None)  # whether or not this tree has it: the stand-in
    modules = ["/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so", "/usr/lib/x86_64-linux-gnu/libykcs11.so"]
    backends = wiring.card_backends(_settings(tmp_path, [B.PKCS11, B.PIV], modules))
    assert [(b.kind, backend_module(b)) for b in backends] == [
        (BackendKind.PKCS11, modules[0]), (BackendKind.PKCS11, modules[1]), (BackendKind.PIV, None)]
    assert [b.kind for b in wiring.card_backends(_settings(tmp_path, [B.PIV, B.PKCS11]))] == [BackendKind.PIV]


def test_a_configured_module_without_pkcs11_support_in_the_build_says_so(tmp_path: Path, monkeypatch) -> None:
    import sys

    import pytest

    from app.card.chooser import open_login_token
    from app.config import CardBackendName as B
    from app.errors import CardError

    monkeypatch.setitem(sys.modules, "app.card.pkcs11", None)
    backends = wiring.card_backends(_settings(tmp_path, [B.PKCS11], ["/opt/mw/libclassicclient.so"]))
    with pytest.raises(CardError) as err:
        open_login_token(backends, None)
    assert "libclassicclient.so is configured, but this build of Spine Desk has no PKCS#11 support" in str(err.value)


def test_the_desktop_token_monitor_is_skipped_with_a_log_line_when_pkcs11_is_missing(monkeypatch, caplog) -> None:
    import logging
    import sys

    from app.cli.desktop import _token_monitor

    monkeypatch.setitem(sys.modules, "app.card.pkcs11", None)
    with caplog.at_level(logging.WARNING, logger="app.cli.desktop"):
        stop = _token_monitor(Path("/opt/mw/libclassicclient.so"), lambda _event: None)
    stop()
    assert "no PKCS#11 token monitor: card removal is seen through pcscd only" in caplog.text


def test_the_desktop_starts_a_token_monitor_per_module_and_merges_its_events(monkeypatch) -> None:
    import sys
    import types

    from app.cli import desktop

    started: list[tuple[Path, object]] = []
    stopped: list[Path] = []

    class TokenMonitor:
        def __init__(self, module: Path, callback) -> None:
            self.module, self.callback = module, callback

        def start(self) -> None:
            started.append((self.module, self.callback))

        def stop(self) -> None:
            stopped.append(self.module)

    class CardMonitor:  # pcscd's monitor, at the seam
        def __init__(self, callback, poll_ms: int) -> None:
            self.callback = callback

        def start(self) -> None:
            started.append((Path("pcscd"), self.callback))

        def stop(self) -> None:
            stopped.append(Path("pcscd"))

    monkeypatch.setitem(sys.modules, "app.card.pkcs11", types.SimpleNamespace(TokenMonitor=TokenMonitor))
    import app.card.pcsc as pcsc

    monkeypatch.setattr(pcsc, "CardMonitor", CardMonitor)
    module = Path("/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so")
    access = desktop.PcscCardAccess(None, backends=[], pkcs11_modules=(module,))
    events: list[tuple[str, str | None]] = []
    stop = access.start_monitor(lambda event: events.append((event.kind, event.reader)))
    assert [m for m, _ in started] == [Path("pcscd"), module]
    pcsc_relay, token_relay = (callback for _, callback in started)
    pcsc_relay(pcsc.CardEvent(pcsc.EventKind.CARD_INSERTED, "Virtual PCD 00 00"))
    token_relay(pcsc.CardEvent(pcsc.EventKind.SERVICE_DOWN))  # the module's state, not pcscd's: not passed on
    token_relay(pcsc.CardEvent(pcsc.EventKind.CARD_INSERTED, "Virtual PCD 00 00"))  # the same card, once
    token_relay(pcsc.CardEvent(pcsc.EventKind.CARD_REMOVED, "Virtual PCD 00 00"))  # the first to see it gone wins
    pcsc_relay(pcsc.CardEvent(pcsc.EventKind.CARD_REMOVED, "Virtual PCD 00 00"))
    assert events == [("card_inserted", "Virtual PCD 00 00"), ("card_removed", "Virtual PCD 00 00")]
    stop()
    assert stopped == [Path("pcscd"), module]


def test_self_test_names_the_card_back_ends_and_a_missing_module(tmp_path: Path, monkeypatch) -> None:
    from app.cli.selftest import check_site_config

    site = tmp_path / "spinedesk.toml"
    site.write_text('[service]\nurl = "https://spine.test"\n[trust]\nanchors = ["/etc/root.pem"]\n[cards]\n'
                    f'backends = ["pkcs11", "piv"]\npkcs11_modules = ["{tmp_path / "absent.so"}"]\n')
    monkeypatch.setenv("SPINEDESK_SITE_CONFIG", str(site))
    text = check_site_config()
    assert f"cards pkcs11 then piv, PKCS#11 modules {tmp_path / 'absent.so'} (missing)" in text


def test_the_atr_for_a_pkcs11_token_comes_from_the_named_pcsc_reader(monkeypatch) -> None:
    import app.card.pcsc as pcsc
    from app.errors import PcscUnavailable

    class System:
        def reader_states(self):
            return [pcsc.ReaderState("Virtual PCD 00 00", True, b"\x3b\x8c"),
                    pcsc.ReaderState("Virtual PCD 00 01", False, b"")]

    monkeypatch.setattr(pcsc, "PcscSystem", System)
    assert wiring.pcsc_atr("Virtual PCD 00 00") == b"\x3b\x8c"
    assert wiring.pcsc_atr("Virtual PCD") == b"\x3b\x8c"  # a prefix, as PC/SC connects
    assert wiring.pcsc_atr("Virtual PCD 00 01") == b""  # no card there
    assert wiring.pcsc_atr("SoftHSM slot ID 0x1") == b""  # not a PC/SC reader
    assert wiring.pcsc_atr(None) == b""  # "the first card found" could be another card than the token opened

    class Down:
        def reader_states(self):
            raise PcscUnavailable("no pcscd")

    monkeypatch.setattr(pcsc, "PcscSystem", Down)
    assert wiring.pcsc_atr("Virtual PCD 00 00") == b""


def test_the_desktop_refuses_a_card_nhs_has_blocked_before_asking_for_its_pin() -> None:
    from datetime import UTC, datetime

    import pytest

    from app.card.backend import BackendKind, CardFamily, CardInfo
    from app.cli.desktop import PcscCardAccess
    from app.errors import CardRetired

    class Token:
        info = CardInfo(backend=BackendKind.PKCS11, family=CardFamily.SERIES_4_6, reader="R", atr=b"",
                        module="/opt/gemalto/libgclib.so")
        closed = False

        def close(self) -> None:
            Token.closed = True

    class Backend:
        kind = BackendKind.PKCS11
        module = "/opt/gemalto/libgclib.so"

        def open(self, reader, atr):
            return Token()

    access = PcscCardAccess(None, now=lambda: datetime(2026, 12, 3, tzinfo=UTC), backends=[Backend()])
    with pytest.raises(CardRetired):
        access.open("R")
    assert Token.closed
