"""Desktop client: card-removal clear time and user-switch time, through the real window, pcscd and service.

Everything is real except typing: the window (under the display given, or an Xvfb this script starts), the
service on loopback (in this process, SQLite), two training cards served to pcscd's virtual reader 00 01, the
client's card monitor and card worker. Figures per run:

* removal → cleared: from pulling the card (the virtual card's socket closes) until every patient view, model
  and cache is empty and the session is gone (includes pcscd noticing, ~0.05-0.1 s); and the clear itself (the
  UI work in the session-ended slot);
* search to banner: from asking for a patient by NHS number until the record and its banner are shown;
* switch user: from inserting the other user's card until that user is logged in and the search screen is
  ready, with the PIN entered the moment the PIN dialog appears (typing excluded); wall time and the process's
  CPU time (user + system) over the same interval — the service and the virtual card run in this process too,
  so the CPU figure is an upper bound for the client.

Usage: python benchmarks/ui_switch_user.py [--runs 10] [--markdown docs/benchmarks/ui.md]
Needs pcscd with the vsmartcard virtual reader (scripts/setup.sh test), Xvfb when there is no display.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PIN = "24681357"
READER, PORT = "Virtual PCD 00 01", 35964


def start_xvfb() -> subprocess.Popen | None:
    if os.environ.get("DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
        return None
    number = next(n for n in range(150, 250) if not Path(f"/tmp/.X{n}-lock").exists())
    proc = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", "1400x1000x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not Path(f"/tmp/.X11-unix/X{number}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.environ["DISPLAY"], os.environ["QT_QPA_PLATFORM"] = f":{number}", "xcb"
    return proc


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    xvfb = start_xvfb()
    if subprocess.run(["pgrep", "-x", "pcscd"], capture_output=True).returncode != 0:
        subprocess.run(["pcscd"], check=True)
    work = Path(tempfile.mkdtemp(prefix="spinedesk-ui-bench-"))
    try:
        return run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if xvfb is not None:
            xvfb.terminate()


def run(args: argparse.Namespace, work: Path) -> int:
    import httpx
    from PySide6.QtWidgets import QApplication

    from app.card.virtual import issue_card
    from app.cli import training
    from app.cli.desktop import PcscCardAccess, quiet_http_logs
    from app.client.client import SpineClient
    from app.client.pds_models import SearchQuery
    from app.pki import TrainingCA
    from app.service.storage import open_store
    from app.ui.app import STYLE
    from app.ui.main_window import MainWindow
    from app.ui.ports import ClientDeps
    from app.ui.signals import protect_singletons

    quiet_http_logs()
    protect_singletons()  # as run_client does
    app = QApplication(["ui-bench"])
    app.setStyleSheet(STYLE)
    ca = TrainingCA.load_or_create(work / "pki")
    store = open_store(f"sqlite:///{work / 'service.db'}")
    training.seed_if_empty(store, 2000, open(os.devnull, "w"))  # noqa: SIM115
    cards = []
    for i, name in enumerate(("Dr Alex Bench", "Dr Blake Bench")):
        card, _ = issue_card(ca, name=name, algorithm="p256", pin=PIN, puk="12345678")
        path = work / f"card{i}.json"
        card.save(path)
        training.register_user(store, path, user_id=f"user{i}", roles=((f"urid{i}", "S8000:G8000:R8000"),))
        cards.append(path)
    service = training.start_service("unused://", ca.directory, store=store)
    http = httpx.Client(timeout=15)

    def gate(on_progress):  # the WES gate is not what is measured here
        class Report:
            compliant, results, failures = True, [], []
        return Report()

    deps = ClientDeps(spine=SpineClient(service.url, http), cards=PcscCardAccess(ca.trust_store(), only_reader=READER),
                      wes_gate=gate, training=True, removal="logout")
    window = MainWindow(deps)
    window.show()
    window.start()

    def wait(pred, timeout=30.0):
        deadline = time.monotonic() + timeout
        while not pred():
            app.processEvents()
            if time.monotonic() > deadline:
                raise TimeoutError("the client did not get there in time")
            time.sleep(0.0005)

    wait(lambda: window.clinical_enabled)
    removal, clear, switch_wall, switch_cpu, banner = [], [], [], [], []
    slot = None
    try:
        for run_no in range(args.runs + 1):  # run 0 warms up (first login, first queries)
            path = cards[run_no % 2]
            slot = training.TrainingCardSlot(path, pin=PIN, port=PORT)
            t0, c0 = time.perf_counter(), cpu()
            slot.insert()
            wait(lambda: window.flow.pin_dialog is not None and window.flow.pin_dialog.isVisible())
            dialog = window.flow.pin_dialog
            dialog.pin.setText(PIN)
            dialog._submit()
            wait(lambda: window.session is not None and window.stack.currentWidget() is window.search)
            t1, c1 = time.perf_counter(), cpu()
            t_open = time.perf_counter()
            window.open_patient("9000000009")
            wait(lambda: window.record.patient is not None and window.record.banner.isVisible())
            t_banner = time.perf_counter()
            window.search_patients(SearchQuery(
                family="Smith", given="Jane", birth_date=window.record.patient.birth_date, fuzzy=True))
            wait(lambda: window.search.model.rowCount() > 0)
            t2 = time.perf_counter()
            slot.remove()
            wait(lambda: window.session is None)
            t3 = time.perf_counter()
            assert window.patient_data_present() == []
            slot = None
            if run_no:
                switch_wall.append((t1 - t0) * 1000)
                switch_cpu.append((c1 - c0) * 1000)
                removal.append((t3 - t2) * 1000)
                clear.append(window.last_clear_ms or 0.0)
                banner.append((t_banner - t_open) * 1000)
            wait(lambda: not window.flow.cards)
    finally:
        if slot is not None:
            slot.remove()
        window.shutdown()
        http.close()
        service.stop()

    def row(name: str, values: list[float]) -> str:
        ordered = sorted(values)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        return f"| {name} | {statistics.median(values):.1f} | {p95:.1f} | {max(values):.1f} |"

    lines = [
        f"Runs: {args.runs} (after one warm-up), {platform.machine()} {platform.system()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, real pcscd + vpcd reader 00 01, service in-process (SQLite, "
        "2,000 patients), P-256 training cards, removal mode \"logout\".",
        "",
        "| measure | median ms | p95 ms | max ms |",
        "|---|---|---|---|",
        row("card pulled → every patient view, model and cache cleared (wall)", removal),
        row("… of which the UI clear itself (session-ended slot)", clear),
        row("other user's card in → logged in, search ready (wall, typing excluded)", switch_wall),
        row("… process CPU time (user + system) over that interval", switch_cpu),
        row("open a patient by NHS number → banner shown (PDS read over HTTP, audited)", banner),
    ]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        header = ("# Desktop client: card removal and user switch\n\n"
                  "Command: `python benchmarks/ui_switch_user.py --runs N --markdown docs/benchmarks/ui.md` "
                  "(see the module docstring for what is timed).\n\n")
        args.markdown.write_text(header + text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
