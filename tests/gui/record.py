"""Record the service answers the fast GUI tests replay (``tests/gui/recorded/``).

The real service runs in-process (``app.cli.training.start_service``: uvicorn in a thread on a loopback port, a
throwaway SQLite database seeded with the 2,000 training patients, the users of the GUI tests registered), and the
real HTTP client (``app.client.client.SpineClient``) makes exactly the calls the client window makes in the tests —
card login (challenge + session + the role bound to it) for each test user and role, PDS read and search, SCR
DocumentReference + Bundle and the permission / emergency calls, CP-IS, reasonable adjustment flags, logout —
through a transport that saves each request's key and the service's answer (status, ETag, JSON body) verbatim, one
file per exchange. Only the service's loopback address is written as ``http://spine.test``, so that re-recording
changes no more than tokens, ids and times. The card signatures come from the in-process virtual PIV applet, so the
login answers are the service's real ones.

Re-record (after a change to the service's answers, the seed, or the calls the window makes), from the repository
root, with the project's virtualenv::

    python -m tests.gui.record            # replaces tests/gui/recorded/ (a few seconds)
    pytest tests/gui -q                   # the fast tier against the new files

then review ``git diff tests/gui/recorded`` and commit the files with the change that needed them. A test that
makes a request nothing recorded fails loudly (``FakeSpine`` names the request); add the call to ``scenario``
below and record again. Tokens and nonces in the files belong to a throwaway service and mean nothing elsewhere.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.gui.recording import BASE_URL, RECORDED, file_name, key_text, request_key
from tests.gui.recording import CARD_PIN as PIN
from tests.support.card import AppletLink

ORG = "A81001"
EMERGENCY_REASON = "Unconscious in the emergency department"
# holder name -> (user id, role profiles (urid, role code)); None: the training defaults (two roles)
USERS: dict[str, tuple[str, tuple[tuple[str, str], ...] | None]] = {
    "Dr Alex Training": ("training-clinician", None),
    "Dr Blake Second": ("blake", (("blake-clinical", "S8000:G8000:R8001"),)),
    "Dr Nora Noroles": ("nora", ()),
    "Olivia Officer": ("olivia", (("olivia-po", "S8002:G8003:R8014"),)),
}


class RecordingTransport(httpx.BaseTransport):
    """Passes every request to the real service and keeps (key, answer); the first answer to a key is kept."""

    def __init__(self, service_url: str) -> None:
        self._inner = httpx.HTTPTransport()
        self._service_url = service_url
        self.exchanges: dict[str, dict[str, Any]] = {}

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        response = self._inner.handle_request(request)
        content = response.read()
        key = request_key(request.method, request.url.path, request.url.query.decode("ascii"),
                          {k.lower(): v for k, v in request.headers.items()}, body)
        self.exchanges.setdefault(key_text(key), {
            "key": key, "status": response.status_code, "etag": response.headers.get("etag"),
            "body": json.loads(content.decode("utf-8").replace(self._service_url, BASE_URL)) if content else None})
        return httpx.Response(response.status_code, headers=response.headers, content=content)

    def close(self) -> None:
        self._inner.close()


def find_patients(store: Any) -> dict[str, str]:
    """The seeded patients the tests open, chosen as the end-to-end GUI tests choose theirs."""
    from app.service.pds.seed import generate_patients

    since = date.today() - timedelta(days=365)
    found: dict[str, str] = {}
    for chunk in generate_patients(2000, seed=0):
        for row in chunk[4:] if chunk and chunk[0].nhs_number == "9000000009" else chunk:
            if row.superseded_by or row.invalidated or row.restricted:
                continue
            nhs = row.nhs_number
            if "scr" not in found and not row.deceased:
                record = store.scr_record(nhs)
                if record and record.latest and record.consent != "No" and (row.gp_ods or "") != ORG:
                    found["scr"] = nhs
                    continue
            if "cpis" not in found and any(p.end_date is None for p, _ in store.cpis_plans(
                    nhs, ended_on_or_after=since)):
                found["cpis"] = nhs
                continue
            if "flag" not in found and store.flags_for_patient(nhs, statuses=("active",)):
                found["flag"] = nhs
                continue
            if ("adult" not in found and not row.deceased and row.birth_date and row.birth_date.year < 1990
                    and nhs not in found.values()):
                found["adult"] = nhs
                found["adult_family"] = row.resource["name"][0]["family"]
                found["adult_birth_date"] = row.birth_date.isoformat()
    return found


def scenario(spine: Any, cards: dict[str, Any], patients: dict[str, str]) -> None:
    """The calls the fast GUI tests make, in the roles they make them in."""
    from app.card.login_card import PivLoginCard
    from app.card.piv import PivSession
    from app.client.cpis import Cpis
    from app.client.flags import Flags
    from app.client.login import card_login, select_role
    from app.client.models import Auth
    from app.client.pds import Pds
    from app.client.pds_models import SearchQuery
    from app.client.scr import Scr
    from app.errors import AppError

    def attempt(call: Any) -> Any:
        try:
            return call()
        except AppError as exc:  # refusals are answers too: recorded, and the tests show them
            print(f"  (refused as expected: {type(exc).__name__})", file=sys.stderr)
            return None

    sessions = []  # every login, to log out at the end
    bound = {}  # urid -> a login bound to that role (a session serves one role, as the window's do)
    for applet in cards.values():
        card = PivLoginCard(PivSession(AppletLink(applet)))
        first = card_login(card, spine, PIN)
        sessions.append(first)
        for n, role in enumerate(first.roles):
            login = first if n == 0 else card_login(card, spine, PIN)
            if login is not first:
                sessions.append(login)
            bound[role.urid] = select_role(spine, login, role)

    def auth(urid: str) -> Auth:
        return Auth(bound[urid].token, urid)

    def open_record(urid: str, nhs: str) -> None:  # what opening a record asks: the patient, then the flags
        attempt(lambda: Pds(spine, auth(urid)).read(nhs))
        attempt(lambda: Flags(spine, auth(urid)).reasonable_adjustments(nhs))

    clinical, clerical, blake = "training-clinical", "training-clerical", "blake-clinical"
    for nhs in ("9000000009", "9000000017", patients["scr"], patients["cpis"], patients["flag"]):
        open_record(clinical, nhs)
    for nhs in (patients["cpis"], patients["flag"]):
        open_record(clerical, nhs)
    for nhs in (patients["adult"], "9000000025"):
        open_record(blake, nhs)
    query = SearchQuery(family=patients["adult_family"], birth_date=date.fromisoformat(patients["adult_birth_date"]))
    attempt(lambda: Pds(spine, auth(blake)).search(query))
    scr = Scr(spine, auth(clinical))
    for nhs in (patients["scr"], "9000000017"):
        attempt(lambda nhs=nhs: scr.index(nhs))
    index = scr.index(patients["scr"])
    assert index.scr_id, "the chosen SCR patient has no record"
    attempt(lambda: scr.record_permission(patients["scr"], False))
    attempt(lambda: scr.open_with_permission(patients["scr"], index.scr_id, registered_here=False))
    attempt(lambda: scr.open_in_emergency(patients["scr"], index.scr_id, EMERGENCY_REASON, registered_here=False))
    attempt(lambda: Cpis(spine, auth(clinical)).view(patients["cpis"], unscheduled=True))
    attempt(lambda: Scr(spine, auth("olivia-po")).alerts("open"))  # the privacy officer's queue, alerts above in it
    for login in sessions:
        spine.logout(login.token)


def record(out: Path = RECORDED) -> int:
    from app.card.virtual import PivApplet, issue_card
    from app.cli import training
    from app.client.client import SpineClient
    from app.pki import TrainingCA
    from app.service.core.limits import HttpLimits
    from app.service.storage import open_store

    with tempfile.TemporaryDirectory(prefix="spinedesk-record-") as tmp:
        folder = Path(tmp)
        ca = TrainingCA.load_or_create(folder / "training-pki")
        store = open_store(f"sqlite:///{folder / 'service.db'}")
        print("seeding the training patients…", file=sys.stderr)
        training.seed_if_empty(store, 2000)
        cards = {}
        for name, (user_id, user_roles) in USERS.items():
            card, _ = issue_card(ca, name=name, algorithm="p256", pin=PIN, puk="12345678")
            path = folder / f"{user_id}.json"
            card.save(path)
            if user_roles is None:
                training.register_user(store, path, user_id=user_id)
            else:
                training.register_user(store, path, user_id=user_id, roles=user_roles)
            cards[name] = PivApplet(card, persist=lambda _card: None)
        patients = find_patients(store)
        running = training.start_service("unused://", ca.directory, store=store,
                                         limits=HttpLimits(auth_rate_per_minute=1e6, auth_burst=1_000_000))
        transport = RecordingTransport(running.url)
        try:
            with httpx.Client(transport=transport, timeout=30) as http:
                scenario(SpineClient(running.url, http), cards, patients)
        finally:
            running.stop()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    taken: set[str] = set()
    for exchange in transport.exchanges.values():
        path = out / file_name(exchange["key"], taken)
        path.write_text(json.dumps(exchange, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    manifest = {"recorded_on": datetime.now(UTC).date().isoformat(),
                "emergency_reason": EMERGENCY_REASON, "users": list(USERS), "patients": patients}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{len(transport.exchanges)} exchanges written to {out}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RECORDED, help="where the recorded exchanges go")
    return record(parser.parse_args(argv).out)


if __name__ == "__main__":
    raise SystemExit(main())
