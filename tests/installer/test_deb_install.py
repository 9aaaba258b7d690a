"""The .deb, installed by apt into a bare Debian 12 (debootstrap minbase), works and leaves nothing behind.

Order matters (one chroot per module): install → commands → service → window → site config → remove → purge.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.installer.conftest import ROOT

pytestmark = [pytest.mark.installer, pytest.mark.slow]
SCREENSHOT = ROOT / "docs" / "screenshots" / "installed-client.png"
PROBLEM_WORDS = ("missing", "not found", "Traceback")


def _version() -> str:
    sys.path.insert(0, str(ROOT))
    import app

    return app.__version__


def test_apt_installs_the_package_with_its_depends(installed):
    status = installed.run(["dpkg-query", "-W", "-f", "${Status} ${Version}", "spinedesk"]).stdout
    assert status == f"install ok installed {_version()}"
    fields = installed.run(["dpkg-query", "-W", "-f", "${Depends}\n${Recommends}", "spinedesk"]).stdout
    assert "pcscd" in fields and "vsmartcard" not in fields and "vpcd" not in fields
    assert installed.run(["dpkg-query", "-W", "-f", "${Status}", "pcscd"]).stdout == "install ok installed"
    vpcd = installed.run(["dpkg-query", "-W", "-f", "${Status}", "vsmartcard-vpcd"], check=False)
    assert "install ok installed" not in vpcd.stdout
    assert os.readlink(installed / "usr/bin/spinedesk") == "/opt/spinedesk/spinedesk"
    assert (installed / "etc/xdg/SpineDesk/spinedesk.toml.example").is_file()
    assert not (installed / "etc/xdg/SpineDesk/spinedesk.toml").exists()  # training until IT writes it
    desktop = installed / "usr/share/applications/spinedesk.desktop"
    assert subprocess.run(["desktop-file-validate", str(desktop)], capture_output=True).returncode == 0
    assert (installed / "usr/share/icons/hicolor/scalable/apps/spinedesk.svg").is_file()
    assert (installed / "usr/share/icons/hicolor/256x256/apps/spinedesk.png").is_file()


def test_version(installed):
    result = installed.run(["spinedesk", "--version"])
    assert result.stdout.strip() == f"spinedesk {_version()}"


def test_self_test_passes(installed):
    result = installed.run(["spinedesk", "--self-test"], check=False, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "self-test passed" in output
    assert not [w for w in PROBLEM_WORDS if w.lower() in output.lower()], output
    for check in ("bundle", "qt", "pcsc", "service", "server", "wes", "site-config"):
        assert f"ok    {check}:" in output, output
    assert "frozen build at /opt/spinedesk/_internal" in output


def test_wes_check_json(installed):
    result = installed.run(["spinedesk", "wes", "check", "--format", "json"], check=False, timeout=120)
    assert result.returncode in (0, 1), result.stdout + result.stderr  # compliant / not compliant: both ran
    report = json.loads(result.stdout)
    assert isinstance(report, dict) and report


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("workers", [1, 2])  # 2: uvicorn spawns workers by re-running the frozen executable
def test_service_answers_from_outside_the_chroot(installed, workers):
    port = _free_port()
    proc = installed.popen(["spinedesk", "service", "--port", str(port), "--workers", str(workers)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline, last = time.monotonic() + 90, None
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_status", timeout=2) as response:
                    status, body = response.status, json.loads(response.read())
                break
            except OSError as exc:
                last = exc
                time.sleep(0.3)
        else:
            pytest.fail(f"the service never answered on port {port}: {last}")
        assert status == 200 and body["status"] == "pass"
        if workers > 1:
            spawned = [pid for pid in installed.processes() if pid != proc.pid]
            assert len(spawned) >= workers, spawned
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _start_xvfb() -> tuple[subprocess.Popen[bytes], str]:
    read, write = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                            pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as pipe:
        number = pipe.readline().strip()
    assert number, "Xvfb did not start"
    return xvfb, f":{number}"


def test_installed_client_window_screenshot(installed):
    """The installed ``spinedesk`` (no subcommand) opens its window on an X server; the screenshot goes to docs."""
    if not os.path.exists("/usr/bin/Xvfb"):
        pytest.fail("Xvfb is needed (apt-get install xvfb)")
    xvfb, display = _start_xvfb()
    installed.bind("/tmp/.X11-unix", "tmp/.X11-unix")
    client = None
    # The smart card service the package depends on, as a workstation runs it (no readers in a chroot; never
    # --auto-exit, never --apdu); package scripts were not allowed to start it, so the test does.
    pcscd = installed.popen(["pcscd", "--foreground"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not (installed / "run/pcscd/pcscd.comm").exists() and time.monotonic() < deadline:
            assert pcscd.poll() is None, "pcscd exited in the chroot"
            time.sleep(0.1)
        client = installed.popen(["spinedesk"], env={"DISPLAY": display, "QT_QPA_PLATFORM": "xcb"},
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out = ROOT / "build" / "installer" / "installed-client.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        grab = subprocess.run([sys.executable, str(Path(__file__).with_name("grab_screen.py")), display, str(out),
                               "--timeout", "90", "--settle", "3"], capture_output=True, text=True, timeout=150)
        alive = client.poll() is None
        if not alive:
            pytest.fail(f"the installed client exited {client.returncode}: {client.stdout.read()}")
        assert grab.returncode == 0, grab.stderr
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        SCREENSHOT.write_bytes(out.read_bytes())
    finally:
        if client is not None and client.poll() is None:
            client.send_signal(signal.SIGTERM)
            try:
                client.wait(timeout=20)
            except subprocess.TimeoutExpired:
                client.kill()
                client.wait()
        pcscd.terminate()
        pcscd.wait(timeout=10)
        installed.stop_processes()
        installed.unbind("tmp/.X11-unix")
        xvfb.terminate()
        xvfb.wait(timeout=10)


def test_site_configuration_from_the_template_switches_training_off(installed):
    etc = installed / "etc/xdg/SpineDesk"
    template = (etc / "spinedesk.toml.example").read_text(encoding="utf-8")
    (etc / "spinedesk.toml").write_text(template.replace("https://spine.example.nhs.uk", "https://spine.test"))
    result = installed.run(["spinedesk", "--self-test"], check=False, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok    site-config: production: service https://spine.test, card removal lock" in result.stdout
    (etc / "wes-waivers.toml").write_text("# IT's waivers (removed by purge)\n")


def _package_files(installed) -> list[str]:
    listing = installed.run(["dpkg-query", "-L", "spinedesk"]).stdout.splitlines()
    return [p for p in listing if p.strip() and p not in ("/.",)]


def test_remove_leaves_only_the_configuration(installed):
    installed.package_files = _package_files(installed)
    installed.run(["apt-get", "remove", "-y", "-q", "spinedesk"])
    status = installed.run(["dpkg-query", "-W", "-f", "${db:Status-Abbrev}", "spinedesk"]).stdout
    assert status.strip() == "rc"
    assert not (installed / "opt/spinedesk").exists()
    assert not os.path.lexists(installed / "usr/bin/spinedesk")
    assert (installed / "etc/xdg/SpineDesk/spinedesk.toml.example").is_file()
    assert (installed / "etc/xdg/SpineDesk/spinedesk.toml").is_file()


def test_purge_leaves_nothing_behind(installed):
    files = getattr(installed, "package_files", [])
    installed.run(["apt-get", "purge", "-y", "-q", "spinedesk"])
    status = installed.run(["dpkg-query", "-W", "-f", "${db:Status-Abbrev}", "spinedesk"], check=False)
    assert status.returncode != 0 or status.stdout.strip() in ("", "un")
    for path in ("opt/spinedesk", "etc/xdg/SpineDesk", "usr/bin/spinedesk",
                 "usr/share/applications/spinedesk.desktop", "usr/share/doc/spinedesk"):
        assert not os.path.lexists(installed / path), path
    assert files, "the package's file list was not recorded before removal"
    left = [p for p in files if os.path.lexists(installed / p) and not (installed / p).is_dir()]
    assert left == []
    opt = installed / "opt"  # minbase has no /opt: the package brought it, and purge takes it away again
    assert not opt.exists() or not list(opt.iterdir())
