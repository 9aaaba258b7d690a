"""The composition root: argument parsing, PIN input, exit codes and the no-display message."""

from __future__ import annotations

import io
import stat

import pytest

from app.__main__ import main
from app.card.virtual import CardFile


def test_issue_reads_pin_and_puk_from_stdin(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPINEDESK_DATA_DIR", str(tmp_path / "data"))
    out, path = io.StringIO(), tmp_path / "card.json"
    code = main(["card", "issue", "--out", str(path), "--name", "Dr Stdin", "--alg", "p256", "--pin-stdin",
                 "--puk-stdin"], stdout=out, stdin=io.StringIO("13572468\n87654321\n"))
    assert code == 0, capsys.readouterr().err
    card = CardFile.load(path)
    assert card.check_pin(b"13572468") and card.check_puk(b"87654321")
    assert "PUK" not in out.getvalue()  # chosen by the caller, so not printed
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "13572468" not in path.read_text() and "87654321" not in path.read_text()


@pytest.mark.parametrize(("stdin", "phrase"), [("12\n", "6 to 8 digits"), ("", "6 to 8 digits")])
def test_bad_pin_is_explained_and_nothing_written(tmp_path, monkeypatch, capsys, stdin, phrase):
    monkeypatch.setenv("SPINEDESK_DATA_DIR", str(tmp_path / "data"))
    code = main(["card", "issue", "--out", str(tmp_path / "c.json"), "--name", "X", "--pin-stdin"],
                stdout=io.StringIO(), stdin=io.StringIO(stdin))
    assert code == 1 and phrase in capsys.readouterr().err
    assert not (tmp_path / "c.json").exists()


def test_no_display_is_said_plainly(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    out = io.StringIO()
    assert main([], stdout=out) == 1
    assert "No display found" in out.getvalue()


def test_usage_errors_exit_2():
    with pytest.raises(SystemExit) as exc:
        main(["card", "issue"], stdout=io.StringIO())
    assert exc.value.code == 2


def test_seed_says_synthetic_and_reference_counts_and_ends_its_progress_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPINEDESK_DATA_DIR", str(tmp_path / "data"))
    out = io.StringIO()
    code = main(["service", "--database", f"sqlite:///{tmp_path / 'service.db'}", "seed", "--patients", "25"],
                stdout=out)
    assert code == 0, capsys.readouterr().err
    message = out.getvalue()
    assert message.startswith("Seeded 25 synthetic + 4 NHS reference patients (seed 0) in "), message
    assert "\r" not in message and message.endswith(" s.\n")
    progress = capsys.readouterr().err
    assert progress.startswith("\r  29 patients") and progress.endswith("\n"), repr(progress)  # a line of its own
