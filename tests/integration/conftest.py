"""Integration fixtures: the real pcscd with the vsmartcard virtual reader, and training cards served to it.

With ``SPINEDESK_REQUIRE_PCSC`` set (the test command sets it from ``CI``), a missing pcscd or vpcd is a
failure, not a skip.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.card.pcsc import PcscSystem
from app.errors import PcscUnavailable

VPCD_CONF = Path("/etc/reader.conf.d/vpcd")
READER0, READER1 = "Virtual PCD 00 00", "Virtual PCD 00 01"
PORT0, PORT1 = 35963, 35964
REQUIRED = bool(os.environ.get("SPINEDESK_REQUIRE_PCSC"))


def _unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"pcscd integration tests must run here: {reason}")
    pytest.skip(reason)


def pcscd_running() -> bool:
    return subprocess.run(["pgrep", "-x", "pcscd"], capture_output=True).returncode == 0


def start_pcscd() -> None:
    """Start pcscd (never --auto-exit, never --apdu) and wait until it lists the virtual readers."""
    if not pcscd_running():
        subprocess.run(["pcscd"], check=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if READER0 in PcscSystem().readers():
                return
        except PcscUnavailable:
            pass
        time.sleep(0.05)
    raise RuntimeError("pcscd started but the virtual readers did not appear")


def stop_pcscd() -> None:
    subprocess.run(["pkill", "-TERM", "-x", "pcscd"], check=False)
    deadline = time.monotonic() + 10
    while pcscd_running() and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.fixture(scope="session")
def pcscd() -> PcscSystem:
    if shutil.which("pcscd") is None:
        _unavailable("pcscd is not installed (apt-get install pcscd)")
    if not VPCD_CONF.exists():
        _unavailable("the vsmartcard virtual reader driver is not installed (apt-get install vsmartcard-vpcd)")
    if not pcscd_running() and os.geteuid() != 0:
        _unavailable("pcscd is not running and only root may start it")
    start_pcscd()
    return PcscSystem()


@pytest.fixture(scope="session")
def training_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("spinedesk-data")


@pytest.fixture(scope="session")
def ca(training_dir):
    from app.pki import TrainingCA

    return TrainingCA.load_or_create(training_dir / "training-pki")


PIN = "24681357"
PUK = "11223344"


def issue_to(ca, path: Path, *, alg: str, name: str = "Dr Ada Training", days: int = 365) -> Path:
    from app.card.virtual import issue_card

    card, _ = issue_card(ca, name=name, algorithm=alg, pin=PIN, puk=PUK, days=days)
    card.save(path)
    return path


@pytest.fixture(scope="session")
def rsa_card_template(ca, tmp_path_factory) -> Path:
    return issue_to(ca, tmp_path_factory.mktemp("cards") / "rsa.json", alg="rsa2048")


@pytest.fixture(scope="session")
def p256_card_template(ca, tmp_path_factory) -> Path:
    return issue_to(ca, tmp_path_factory.mktemp("cards") / "p256.json", alg="p256")


@pytest.fixture
def rsa_card(rsa_card_template, tmp_path) -> Path:
    """A fresh copy per test: PIN counters persist in the file."""
    return Path(shutil.copy(rsa_card_template, tmp_path / "rsa.json"))


@pytest.fixture
def p256_card(p256_card_template, tmp_path) -> Path:
    return Path(shutil.copy(p256_card_template, tmp_path / "p256.json"))


def wait_card_state(system: PcscSystem, reader: str, present: bool, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            states = {s.name: s.card_present for s in system.reader_states()}
        except PcscUnavailable:
            states = {}
        if states.get(reader) is present:
            return True
        time.sleep(0.02)
    return False


class InsertedCard:
    """A card file served to pcscd's virtual reader from a thread of this process (pyscard releases the GIL)."""

    def __init__(self, system: PcscSystem, path: Path, port: int = PORT0, reader: str = READER0) -> None:
        from app.card.virtual import CardFile, PivApplet, VpcdLink

        self.system, self.path, self.reader = system, path, reader
        self.card = CardFile.load(path)
        self.applet = PivApplet(self.card, persist=lambda c: c.save(path))
        self.link = VpcdLink(self.applet, port=port)

    def __enter__(self) -> InsertedCard:
        self.link.start()
        assert wait_card_state(self.system, self.reader, True), f"card never appeared in {self.reader}"
        return self

    def pull(self) -> None:
        self.link.stop()
        assert wait_card_state(self.system, self.reader, False), "card still present after removal"

    def __exit__(self, *exc: object) -> None:
        self.link.stop()
        wait_card_state(self.system, self.reader, False)


@pytest.fixture
def insert(pcscd) -> Iterator:
    cards: list[InsertedCard] = []

    def _insert(path: Path, port: int = PORT0, reader: str = READER0) -> InsertedCard:
        card = InsertedCard(pcscd, path, port, reader).__enter__()
        cards.append(card)
        return card

    yield _insert
    for card in cards:
        card.__exit__()


def spinedesk(*args: str, env: dict | None = None, input: str | None = None, timeout: float = 60):
    """Run the real command line as a user would."""
    return subprocess.run([sys.executable, "-m", "app", *args], capture_output=True, text=True, input=input,
                          env={**os.environ, **(env or {})}, timeout=timeout, cwd=Path(__file__).parents[2])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def env(tmp_path):
    """The commands' data and logs (XDG_STATE_HOME: the log folder) in the test's own directory."""
    return {"SPINEDESK_DATA_DIR": str(tmp_path / "data"), "XDG_STATE_HOME": str(tmp_path / "state")}


@pytest.fixture
def service(env, tmp_path):
    port = free_port()
    db = f"sqlite:///{tmp_path / 'service.db'}"
    seeded = spinedesk("service", "--database", db, "seed", "--patients", "50", env=env)
    assert seeded.returncode == 0, seeded.stderr
    out = (tmp_path / "service.stdout").open("w")  # kept: tests search what the service printed
    err = (tmp_path / "service.stderr").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "app", "service", "--database", db, "--port", str(port)],
                            cwd=Path(__file__).parents[2], env={**os.environ, **env}, stdout=out, stderr=err,
                            text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/_status").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    else:
        proc.kill()
        proc.wait(20)
        out.close()
        err.close()
        pytest.fail(f"service did not start: {(tmp_path / 'service.stderr').read_text()}")
    yield url, db
    proc.send_signal(signal.SIGTERM)
    proc.wait(20)
    out.close()
    err.close()
