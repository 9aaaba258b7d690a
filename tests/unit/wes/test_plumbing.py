"""Small pieces: the schema subset, shared probe answers, platform selection, and start-up cost of other commands."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from tests.support.wes.harness import settings_for
from wes import schema
from wes.probes import CachedProbes, default_probes, platform_name
from wes.probes.linux import LinuxProbes
from wes.probes.macos import MacProbes
from wes.probes.windows import WindowsProbes


def test_schema_subset_refuses_keywords_it_does_not_implement():
    with pytest.raises(ValueError, match="not supported"):
        schema.errors({}, {"type": "object", "oneOf": []})
    assert schema.field_name(("checks", "card.cert", "severity")) == 'checks."card.cert".severity'
    assert schema.field_name(("os", 3, "version")) == "os[3].version"
    assert schema.errors(True, {"type": "integer"}) and not schema.errors(3.0, {"type": "integer"})


def test_cached_probes_ask_once_and_share_errors():
    calls = []
    gate = threading.Event()

    class Inner:
        def pcsc(self):
            calls.append("pcsc")
            gate.wait(2)
            raise RuntimeError("pcscd is wedged")

    cached = CachedProbes(Inner())
    errors = []

    def ask():
        try:
            cached.pcsc()
        except RuntimeError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=ask) for _ in range(5)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(5)
    assert calls == ["pcsc"] and errors == ["pcscd is wedged"] * 5
    with pytest.raises(AttributeError):
        cached.not_a_probe  # noqa: B018


def test_default_probes_by_platform(tmp_path):
    settings = settings_for(tmp_path)
    assert isinstance(default_probes(settings, platform="win32"), WindowsProbes)
    assert isinstance(default_probes(settings, platform="darwin"), MacProbes)
    assert isinstance(default_probes(settings, platform="linux"), LinuxProbes)
    assert default_probes(settings, platform="freebsd14").platform == "freebsd14"
    assert platform_name("linux2") == "linux"


def test_other_commands_do_not_load_the_checker():
    """Every spinedesk command builds the whole parser: the checker (and Qt) load only for 'wes check'."""
    code = ("import sys, app.__main__ as m; m.build_parser(); "
            "print(sorted(n for n in sys.modules if n == 'wes' or n.startswith(('wes.', 'PySide6'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
