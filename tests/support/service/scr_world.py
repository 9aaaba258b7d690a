"""A live service with seeded SCR content and SCR roles, for the SCR HTTP tests (not a test module itself).

Roles (URID → user, organisation, activities): the patient 9000000009 is registered at Y12345.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from app.pki import TrainingCA
from app.protocol import SCR_BASE
from app.service.core.auth import token_hash
from app.service.pds.seed import generate_patients
from app.service.scr import seed as seed_scr
from app.service.store import RoleProfile, Store
from tests.support.service.live import Live, serve

FULL, RESTRICTED, OPTED_OUT, NO_RECORD = "9000000009", "9000000025", "9000000017", "9000000033"
GP_ORG, ED_ORG = "Y12345", "RXX01"
FHIR = "application/fhir+json"
# NHS's SCR specification, vendored unmodified in the repository (tests/specs/scr/SOURCE.md): always present.
SCR_SPEC_DIR = Path(__file__).resolve().parents[2] / "specs" / "scr" / "specification"
SCR_EXAMPLES = SCR_SPEC_DIR / "components" / "examples"
ROLES: dict[str, tuple[str, str, tuple[str, ...]]] = {  # urid -> (user, org, activities)
    "scr-gp": ("gp", GP_ORG, ("B0370", "B0360", "B0020")),  # the patient's own practice
    "scr-ed": ("doc", ED_ORG, ("B0370", "B0168")),  # emergency department clinician
    "scr-view": ("nurse", ED_ORG, ("B0370",)),  # may view, no emergency access
    "scr-legal": ("lawyer", ED_ORG, ("B0370", "B0082")),  # legal override
    "scr-clerk": ("clerk", GP_ORG, ("B0264",)),  # PDS only
    "scr-po": ("po", ED_ORG, ("B0015",)),  # privacy officer: every alert at RXX01
    "scr-po16": ("po16", ED_ORG, ("B0016",)),  # self-claim alerts only
    "scr-po-gp": ("pogp", GP_ORG, ("B0015",)),  # privacy officer of another organisation
}


@dataclass
class ScrWorld:
    live: Live
    http: httpx.Client
    tokens: dict[str, str] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)  # urid -> user for role profiles a test adds

    @property
    def store(self) -> Store:
        return self.live.store

    @property
    def base(self) -> str:
        return f"{self.live.url}{SCR_BASE}"

    def headers(self, urid: str, *, request_id: str | None = None, **extra: str) -> dict[str, str]:
        user = self.users[urid] if urid in self.users else ROLES[urid][0]
        if urid not in self.tokens:  # a session serves one role: one token per role profile
            token = secrets.token_urlsafe(32)
            self.store.create_session(token_hash(token), user, datetime.now(UTC) + timedelta(hours=2),
                                      role_profile_id=urid)
            self.tokens[urid] = token
        return {"Authorization": f"Bearer {self.tokens[urid]}", "NHSD-Session-URID": urid,
                "X-Request-ID": request_id or str(uuid.uuid4()), **extra}

    def index(self, urid: str, nhs: str, **headers: str) -> httpx.Response:
        return self.http.get(f"{self.base}/DocumentReference",
                             params={"patient": f"https://fhir.nhs.uk/Id/nhs-number|{nhs}"},
                             headers=self.headers(urid, **headers))

    def latest(self, nhs: str) -> str | None:
        record = self.store.scr_record(nhs)
        return record.latest.id if record and record.latest else None

    def read(self, urid: str, nhs: str, scr_id: str | None = None, **headers: str) -> httpx.Response:
        return self.http.get(f"{self.base}/Bundle", params={
            "composition.identifier": scr_id or self.latest(nhs) or str(uuid.uuid4()),
            "composition.subject:Patient.identifier": f"https://fhir.nhs.uk/Id/nhs-number|{nhs}"},
            headers=self.headers(urid, **headers))

    def post(self, urid: str, path: str, body: Any, *, request_id: str | None = None,
             content_type: str = FHIR) -> httpx.Response:
        return self.http.post(f"{self.base}{path}", content=json.dumps(body).encode(),
                              headers=self.headers(urid, request_id=request_id, **{"Content-Type": content_type}))

    def permission(self, urid: str, nhs: str, code: str = "Yes", *, name: str = "permissionToView",
                   request_id: str | None = None) -> httpx.Response:
        return self.post(urid, "/$setPermission", permission_body(nhs, code, name), request_id=request_id)

    def alert(self, urid: str, nhs: str, alert_type: int, subtype: int, reason: str | None = "Patient "
              "unconscious on arrival", *, request_id: str | None = None) -> httpx.Response:
        return self.post(urid, "/AuditEvent", alert_body(nhs, alert_type, subtype, reason), request_id=request_id)

    def audit(self, request_id: str) -> list[Any]:
        return [r for r in self.store.query_audit(limit=100_000) if r.request_id == request_id.lower()]


def permission_body(nhs: str, code: str, name: str = "permissionToView") -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": [{"name": name, "part": [
        {"name": "nhsNumber", "valueString": nhs},
        {"name": "permissionCode", "valueCoding": {"system": "https://fhir.nhs.uk/CodeSystem/SCR-ACSPermission",
                                                   "code": code}}]}]}


def alert_body(nhs: str, alert_type: int, subtype: int, reason: str | None) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((SCR_EXAMPLES / "AuditEvent.json").read_text(encoding="utf-8"))
    body["type"] = {"system": "https://fhir.nhs.uk/CodeSystem/SCR-AlertType", "code": str(alert_type),
                    "display": "Create LR (Self Claimed)" if alert_type == 1 else "Access Alert"}
    body["subtype"] = [{"system": "https://fhir.nhs.uk/CodeSystem/SCR-AlertReason", "code": str(subtype),
                        "display": "reason"}]
    body["agent"][0]["who"]["identifier"] = {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs}
    if reason is None:
        body.pop("outcomeDesc", None)
    else:
        body["outcomeDesc"] = reason
    return body


def add_roles(store: Store) -> None:
    for urid, (user, org, acts) in ROLES.items():
        if store.get_user(user) is None:
            store.add_user(user, user.title())
        store.add_role_profile(RoleProfile(urid, user, org, f"Org {org}", "S8000:G8000:R8000", "Clinical", acts))


@contextmanager
def scr_world(store: Store, tmp: Path, patients: int = 60) -> Iterator[ScrWorld]:
    ca = TrainingCA.load_or_create(tmp)
    with serve(store, ca, patients=patients) as live, httpx.Client(timeout=30) as http:
        for chunk in generate_patients(patients, seed=7):
            seed_scr.seed_rows(store, chunk, 7)
        add_roles(store)
        yield ScrWorld(live, http)
