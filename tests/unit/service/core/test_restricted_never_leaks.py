"""Restricted patients (meta.security R) never leak their location data through any response, on both stores.

The restricted patients are NHS's 9000000025 and every restricted one the seed made (about 1%), found through the
store. The values that must never leave are taken from each stored full resource: address lines and postcodes,
telecom values (and contact telecoms), the GP practice and pharmacy ODS codes and the place of birth. Each patient
also gets a unique canary (a telecom and a temporary address added by PATCH over HTTP, and a RelatedPerson put in
the store), so that canaries can be looked for in every body, search bundles and the whole audit trail included.

Responses collected: read (two roles), search by name + birth date (exact, fuzzy, with history), search by
postcode / wildcard postcode / fuzzy postcode / GP practice (must not find them), search by name + birth date
with their right and a wrong phone or e-mail (the same answer either way), RelatedPerson, every kind of
PATCH answer (success, replay, stale, missing If-Match, invalid, denied) and the privacy officer's audit query.

The other services (SCR, CP-IS, Reasonable Adjustment flags, the audit query and the SCR alert queue) are driven
the same way for every restricted patient, as roles entitled to none of the withheld fields, through every route's
success and error paths; no response header or body, and no log record (DEBUG and above, captured), may carry
any restricted patient's withheld value or the seed's name for their GP practice.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.pki import TrainingCA
from app.protocol import CPIS_BASE, FLAGS_BASE, SCR_BASE
from app.resources_path import resource
from app.service.core.patient import security_label, to_row
from app.service.cpis import rules as cpis_rules
from app.service.cpis import seed as seed_cpis
from app.service.cpis.rules import INBOX_PATH
from app.service.cpis.store import CpisPlan
from app.service.flags import seed as seed_flags
from app.service.flags.codes import load_codes
from app.service.flags.model import ACTIVE
from app.service.flags.seed import flag_for
from app.service.pds.patch import apply_patches, parse_patches
from app.service.pds.seed import generate_patients
from app.service.scr import seed as seed_scr
from app.service.scr.seed import document_for
from app.service.store import RoleProfile, SearchFilter, Store
from tests.support.service.flags_helpers import flag_body, removal
from tests.support.service.live import Live, serve
from tests.support.service.scr_world import ScrWorld

WITHHELD = ("address", "telecom", "contact", "generalPractitioner", "managingOrganization")




# --- what must not leak -------------------------------------------------------------------------------------


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


def secrets_of(resource: dict[str, Any]) -> set[str]:
    """The location-sensitive values of a full stored resource, minus any that its non-withheld part also holds
    (a town that is also a family name would otherwise be a false alarm)."""
    found: set[str] = set()
    for item in resource.get("address", []):
        found.update(item.get("line", []))
        if item.get("postalCode"):
            found.update({item["postalCode"], item["postalCode"].replace(" ", "")})
    for item in resource.get("telecom", []):
        found.add(item["value"])
    for contact in resource.get("contact", []):
        found.update(t["value"] for t in contact.get("telecom", []))
    for gp in resource.get("generalPractitioner", []):
        found.add(gp["identifier"]["value"])
    for ext in resource.get("extension", []):
        if "valueReference" in ext:  # nominated pharmacy, dispenser, appliance supplier
            found.add(ext["valueReference"]["identifier"]["value"])
        if "valueAddress" in ext:  # place of birth
            found.update(v for k, v in ext["valueAddress"].items() if k != "country")
    visible = {k: v for k, v in resource.items() if k not in (*WITHHELD, "extension")}
    visible_text = json.dumps(visible, ensure_ascii=False)
    return {s for s in found if len(s) >= 4 and s not in visible_text}


@dataclass
class Restricted:
    nhs: str
    secrets: set[str]  # from the stored full resource
    canaries: set[str]  # unique to this patient: must appear in no response at all
    family: str
    given: str
    birth_date: str
    gender: str
    postcode: str
    gp: str
    email: str | None
    phone: str


@dataclass
class Env:
    live: Live
    alice: str
    bob: str
    patients: list[Restricted]
    bodies: list[tuple[str, str]]  # (label, headers + body) of every response collected
    http: httpx.Client

    def token(self, urid: str) -> str:
        """A live token bound to ``urid`` (a session serves one role)."""
        return self.live.token_for(urid)

    def get(self, label: str, url: str, token: str, urid: str, **kw: Any) -> httpx.Response:
        r = self.http.get(url, headers=self.live.headers(token, urid), **kw)
        self.keep(label, r)
        return r

    def keep(self, label: str, r: httpx.Response) -> None:
        assert r.status_code < 500, f"{label}: {r.status_code} {r.text}"
        self.bodies.append((label, f"{dict(r.headers)}\n{r.text}"))


def canary_patch(nhs: str) -> dict[str, Any]:
    today = datetime.now(UTC).date()
    return {"patches": [
        {"op": "add", "path": "/telecom/-", "value": {"system": "email", "value": f"canary.{nhs}@leak-canary.example",
                                                      "use": "home"}},
        {"op": "add", "path": "/address/-", "value": {
            "use": "temp", "text": "Second Home", "period": {"start": today.isoformat(),
                                                             "end": (today + timedelta(days=30)).isoformat()},
            "line": [f"{nhs} Canary Cottage", "Leakwatch Lane"], "postalCode": "ZZ99 3CZ"}},
    ]}


@pytest.fixture(scope="module")
def env(shared_store: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    ca = TrainingCA.load_or_create(tmp_path_factory.mktemp("pki"))
    with serve(shared_store, ca) as live, httpx.Client(timeout=30) as http:
        rows = shared_store.search(SearchFilter(birth_date_from=date(1800, 1, 1), limit=100_000))
        numbers = sorted(r.nhs_number for r in rows if r.restricted)
        assert "9000000025" in numbers and len(numbers) >= 3, numbers  # NHS's one plus seeded ones
        alice, bob = live.login("alice"), live.login("bob")
        env = Env(live, alice, bob, [], [], http)
        for nhs in numbers:
            # canaries: written straight into the store (withheld details cannot be changed over the API —
            # that refusal is itself kept as a body to check) and a RelatedPerson
            row = shared_store.get_patient(nhs)
            planted = apply_patches(row.resource, parse_patches(canary_patch(nhs)), version=row.version + 1,
                                    today=datetime.now(UTC).date())
            shared_store.update_patient(nhs, row.version, to_row(planted, row.version + 1))
            etag = f'W/"{row.version + 1}"'
            r = http.patch(live.pds(f"/Patient/{nhs}"), json=canary_patch(nhs), headers=live.headers(
                alice, "clin-1", **{"If-Match": etag, "Content-Type": "application/json-patch+json"}))
            assert r.status_code == 403, r.text
            env.keep(f"{nhs} canary PATCH refused", r)
            shared_store.put_related_persons([(nhs, [{
                "resourceType": "RelatedPerson", "id": f"RP{nhs}", "patient": {"identifier": {"value": nhs}},
                "name": [{"family": "Kinsman", "given": ["Canary"]}],
                "address": [{"line": [f"{nhs} Relative Row"], "postalCode": "ZZ99 4RP"}],
                "telecom": [{"system": "phone", "value": f"0163296{nhs[-4:]}9"},
                            {"system": "email", "value": f"relative.{nhs}@leak-canary.example"}]}])])
            stored = shared_store.get_patient(nhs).resource
            name = next(n for n in stored["name"] if n.get("use") == "usual")
            home = next(a for a in stored["address"] if a.get("use") == "home")
            emails = [t["value"] for t in stored["telecom"] if t["system"] == "email" and "canary" not in t["value"]]
            env.patients.append(Restricted(
                nhs=nhs, secrets=secrets_of(stored),
                canaries={f"canary.{nhs}@leak-canary.example", f"{nhs} Canary Cottage", "Leakwatch Lane",
                          "ZZ99 3CZ", f"{nhs} Relative Row", "ZZ99 4RP", f"relative.{nhs}@leak-canary.example",
                          "Kinsman", f"RP{nhs}"},
                family=name["family"], given=name["given"][0], birth_date=stored["birthDate"],
                gender=stored["gender"], postcode=home["postalCode"],
                gp=stored["generalPractitioner"][0]["identifier"]["value"], email=emails[0] if emails else None,
                phone=next(t["value"] for t in stored["telecom"] if t["system"] == "phone")))
            assert {"ZZ99 3CZ", home["postalCode"], env.patients[-1].gp} <= env.patients[-1].secrets
        yield env


def ids(bundle: dict[str, Any]) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", [])]


def assert_clean(label: str, text: str, forbidden: set[str]) -> None:
    leaked = sorted(v for v in forbidden if v in text)
    assert not leaked, f"{label} leaks {leaked}:\n{text[:3000]}"


def check_entry(label: str, bundle: dict[str, Any], p: Restricted) -> None:
    for entry in bundle.get("entry", []):
        if entry["resource"]["id"] == p.nhs:
            assert not set(WITHHELD) & set(entry["resource"]), f"{label}: {entry}"
            assert_clean(label, json.dumps(entry, ensure_ascii=False), p.secrets | p.canaries)


# --- the responses ------------------------------------------------------------------------------------------


def test_read_withholds_location_data(env: Env) -> None:
    for p in env.patients:
        for urid in ("clin-1", "clerk-1"):
            r = env.get(f"{p.nhs} read as {urid}", env.live.pds(f"/Patient/{p.nhs}"), env.token(urid), urid)
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["id"] == p.nhs and body["meta"]["security"][0]["code"] == "R"
            assert not set(WITHHELD) & set(body), sorted(body)
            assert_clean(f"{p.nhs} read", r.text, p.secrets | p.canaries)


def test_name_and_birth_date_searches_find_them_stripped(env: Env) -> None:
    for p in env.patients:
        for label, params in (
                ("exact", {"family": p.family, "birthdate": f"eq{p.birth_date}"}),
                ("exact+given+gender", {"family": p.family, "given": p.given, "gender": p.gender,
                                        "birthdate": f"eq{p.birth_date}"}),
                ("history", {"family": p.family, "birthdate": f"eq{p.birth_date}", "_history": "true"}),
                ("fuzzy", {"family": p.family, "given": p.given, "birthdate": f"eq{p.birth_date}",
                           "_fuzzy-match": "true"})):
            r = env.get(f"{p.nhs} search {label}", env.live.pds("/Patient"), env.token("clin-1"), "clin-1",
                        params=params)
            assert r.status_code == 200, r.text
            bundle = r.json()
            assert p.nhs in ids(bundle), f"{label} search should find {p.nhs}: {params} -> {r.text[:500]}"
            check_entry(f"{p.nhs} search {label}", bundle, p)


def test_location_searches_never_find_them(env: Env) -> None:
    for p in env.patients:
        base = {"family": p.family, "birthdate": f"eq{p.birth_date}"}
        for label, params in (
                ("postcode", {**base, "address-postalcode": p.postcode}),
                ("postcode-no-space", {**base, "address-postalcode": p.postcode.replace(" ", "")}),
                ("postcode-wildcard", {**base, "address-postalcode": p.postcode[:3] + "*"}),
                ("gp", {**base, "general-practitioner": p.gp}),
                ("postcode+gp", {**base, "address-postalcode": p.postcode, "general-practitioner": p.gp}),
                ("fuzzy-postcode", {"family": p.family, "gender": p.gender, "birthdate": f"eq{p.birth_date}",
                                    "address-postalcode": p.postcode, "_fuzzy-match": "true"}),
                ("fuzzy-given-postcode", {"given": p.given, "gender": p.gender, "birthdate": f"eq{p.birth_date}",
                                          "address-postalcode": p.postcode, "_fuzzy-match": "true"})):
            r = env.get(f"{p.nhs} search {label}", env.live.pds("/Patient"), env.token("clin-1"), "clin-1",
                        params=params)
            assert r.status_code == 200, f"{label}: {r.text}"
            assert p.nhs not in ids(r.json()), f"a search by {label} found restricted {p.nhs}"


def test_related_people_are_withheld(env: Env) -> None:
    for p in env.patients:
        for urid in ("clin-1", "clerk-1"):
            r = env.get(f"{p.nhs} RelatedPerson as {urid}", env.live.pds(f"/Patient/{p.nhs}/RelatedPerson"),
                        env.token(urid), urid)
            assert r.status_code == 200 and r.json()["total"] == 0 and r.json().get("entry", []) == [], r.text
            assert_clean(f"{p.nhs} RelatedPerson", r.text, p.secrets | p.canaries)


def patch_as(env: Env, p: Restricted, label: str, body: Any, urid: str = "clin-1",
             **headers: str) -> httpx.Response:
    h = env.live.headers(env.token(urid), urid, **{"Content-Type": "application/json-patch+json", **headers})
    r = env.http.patch(env.live.pds(f"/Patient/{p.nhs}"), json=body, headers=h)
    env.keep(f"{p.nhs} PATCH {label}", r)
    assert_clean(f"{p.nhs} PATCH {label}", r.text, p.secrets | p.canaries)
    return r


def test_every_patch_answer_is_stripped(env: Env) -> None:
    for p in env.patients:
        version = env.live.store.get_patient(p.nhs).version
        keep_gender = {"patches": [{"op": "replace", "path": "/gender", "value": p.gender}]}
        request_id = str(uuid.uuid4())
        ok = patch_as(env, p, "success", keep_gender, **{"If-Match": f'W/"{version}"', "X-Request-ID": request_id})
        assert ok.status_code == 200 and not set(WITHHELD) & set(ok.json()), ok.text
        replay = patch_as(env, p, "replay", keep_gender, **{"If-Match": f'W/"{version}"',
                                                             "X-Request-ID": request_id})
        assert (replay.status_code, replay.content) == (200, ok.content)
        assert patch_as(env, p, "stale", keep_gender, **{"If-Match": f'W/"{version}"'}).status_code == 409
        assert patch_as(env, p, "no If-Match", keep_gender).status_code == 412
        current = {"If-Match": f'W/"{version + 1}"'}
        invalid = {"patches": [{"op": "replace", "path": "/address/0/line/0", "value": "1 New Street"}]}
        # withheld details: one fixed refusal whatever the operation, so nothing can be probed
        refused = patch_as(env, p, "withheld change", invalid, **current)
        assert refused.status_code == 403
        removal = {"patches": [{"op": "remove", "path": "/telecom/0"}]}
        assert (patch_as(env, p, "untested remove", removal, **current).content) == refused.content
        assert patch_as(env, p, "denied", keep_gender, "clerk-1", **current).status_code == 403


def test_audit_trail_holds_no_location_data(env: Env) -> None:
    everything = set().union(*(p.secrets | p.canaries for p in env.patients))
    for p in env.patients:
        r = env.get(f"{p.nhs} audit query", f"{env.live.url}/audit/records", env.token("po-1"), "po-1",
                    params={"patient": p.nhs, "_count": "1000"})
        assert r.status_code == 200 and r.json()["records"], r.text
        assert {x["nhs_number"] for x in r.json()["records"]} == {p.nhs}
        assert_clean(f"{p.nhs} audit query", r.text, everything)
    r = env.get("whole audit trail", f"{env.live.url}/audit/records", env.token("po-1"), "po-1",
                params={"_count": "1000"})
    assert r.status_code == 200
    assert_clean("whole audit trail", r.text, everything)
    assert env.live.store.verify_audit().ok


# --- SCR, CP-IS, Reasonable Adjustment flags and the audit query --------------------------------------------
#
# The same rule for the other services. Everything below is driven as roles at LEAK_ORG, which is no restricted
# patient's practice, so entitled to none of their withheld fields: success and error paths of every route. The
# withheld values come from the seed (the stored PDS record — see ``secrets_of`` — and the seed's name for each
# GP practice). The patient's own practice (entitled) only makes the data that others then read: the seeded SCR
# and flag it authored, a CP-IS access and a consent preference it recorded.

LEAK_ORG = "RXX01"  # an emergency department
LEAK_ROLES: dict[str, tuple[str, ...]] = {  # urid -> activities; all user "leaky" at LEAK_ORG
    "lk-view": ("B0370",), "lk-emergency": ("B0370", "B0168"), "lk-legal": ("B0370", "B0082"),
    "lk-consent": ("B0370", "B0020"), "lk-upload": ("B0360",), "lk-flags": ("B0360", "B0370"),
    "lk-trace": ("B0264",), "lk-cpis-u": ("B0107",), "lk-cpis-s": ("B0170",), "lk-po": ("B0015",),
    "lk-po16": ("B0016",), "lk-none": (),
}
PRACTICE_ACTIVITIES = ("B0107", "B0360", "B0370", "B0020")
NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"


def seeded_practice_names() -> dict[str, str]:
    data = json.loads(resource("seed", "uk_demographics.json").read_text(encoding="utf-8"))
    return {p["ods"]: p["name"] for p in data["practices"]}


def withheld_pattern(values: set[str]) -> re.Pattern[str]:
    """Any of ``values`` as a whole token (an ODS code inside an upper-case UUID is not a leak)."""
    alternatives = "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))
    return re.compile(f"(?<![0-9A-Za-z])(?:{alternatives})(?![0-9A-Za-z])")


@dataclass
class Watch:
    env: Env
    w: ScrWorld
    forbidden: set[str]
    pattern: re.Pattern[str]
    practice_urid: dict[str, str]  # NHS number -> the role at that patient's own practice
    practice_name: dict[str, str]  # NHS number -> the seed's name of their practice
    leaks: list[str] = field(default_factory=list)  # found by this test so far

    def check(self, label: str, r: httpx.Response, *expected: int) -> httpx.Response:
        """Keep the response for the canary check, check its status, and note every withheld value its headers,
        its text or any string in its JSON carries (all are reported at the end of the test, not just the first).
        """
        self.env.keep(label, r)
        assert not expected or r.status_code in expected, f"{label}: {r.status_code} {r.text[:800]}"
        texts = [json.dumps(dict(r.headers)), r.text]
        with contextlib.suppress(ValueError):
            texts.extend(_strings(r.json()))
        found = sorted({v for text in texts for v in self.pattern.findall(text)})
        if found:
            self.leaks.append(f"{label} ({r.status_code}) carries {found}")
        return r

    def verdict(self, caplog: pytest.LogCaptureFixture) -> None:
        """Add what the log records carry, then fail with every leak found."""
        assert caplog.records, "no log record captured: the trap is not working"
        for record in caplog.records:
            text = record.getMessage()
            if record.exc_info:
                text += logging.Formatter().formatException(record.exc_info)
            found = sorted(set(self.pattern.findall(text)))
            if found:
                self.leaks.append(f"log record {record.name} {record.levelname} carries {found}: {text[:300]}")
        leaks, self.leaks = self.leaks, []
        assert not leaks, f"{len(leaks)} leaks:\n" + "\n".join(leaks)

    def get(self, label: str, path: str, urid: str, *expected: int, params: Any = None,
            **headers: str) -> httpx.Response:
        r = self.w.http.get(f"{self.env.live.url}{path}", params=params, headers=self.w.headers(urid, **headers))
        return self.check(label, r, *expected)

    def send(self, label: str, method: str, path: str, urid: str, body: Any, *expected: int,
             content_type: str = "application/fhir+json", **headers: str) -> httpx.Response:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        r = self.w.http.request(method, f"{self.env.live.url}{path}", content=raw, headers=self.w.headers(
            urid, **{"Content-Type": content_type, **headers}))
        return self.check(label, r, *expected)


@pytest.fixture
def trap(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every log record at DEBUG and above, the server's own (uvicorn does not propagate to the root) included."""
    caplog.set_level(logging.DEBUG)
    # the desktop client quietens httpx, httpcore and uvicorn's access log (URLs name patients) for the rest of the
    # process, and a test of it may have run first in this process: lower them again here, restored afterwards
    for name in ("httpx", "httpcore", "uvicorn", "uvicorn.error", "uvicorn.access"):
        caplog.set_level(logging.DEBUG, logger=name)
    server = logging.getLogger("uvicorn")
    server.addHandler(caplog.handler)
    yield caplog
    server.removeHandler(caplog.handler)


@pytest.fixture(scope="module")
def watch(env: Env) -> Watch:
    store, live = env.live.store, env.live
    for chunk in generate_patients(300, seed=7):  # what the seed holds for the patients the server was given
        seed_scr.seed_rows(store, chunk, 7)
        seed_flags.seed_rows(store, chunk, 7)
        seed_cpis.seed_rows(store, chunk, 7)
    names = seeded_practice_names()
    w = ScrWorld(live, env.http)
    store.add_user("leaky", "Lee Kage")
    for urid, acts in LEAK_ROLES.items():
        store.add_role_profile(RoleProfile(urid, "leaky", LEAK_ORG, "Training Hospital", "S8000:G8000:R8000",
                                           "Clinical", acts))
        w.users[urid] = "leaky"
    store.add_user("practice", "Practice Clinician")
    # PDS also has "very restricted" (V), treated as R; the seed makes only R, so one of its patients becomes V
    very = next(p for p in reversed(env.patients) if p.nhs != "9000000025")
    row = store.get_patient(very.nhs)
    relabelled = dict(row.resource, meta={**row.resource["meta"], "security": [security_label("V")]})
    store.update_patient(very.nhs, row.version, to_row(relabelled, row.version + 1))
    assert store.get_patient(very.nhs).restricted
    today = datetime.now(UTC).date()
    codes = load_codes()
    forbidden: set[str] = set()
    practice_urid, practice_name = {}, {}
    for p in env.patients:
        assert p.gp not in (LEAK_ORG, "A81001"), f"{p.nhs} is registered at a test role's organisation"
        row = store.get_patient(p.nhs)
        name = names.get(p.gp, f"Practice {p.gp}")
        forbidden |= p.secrets | p.canaries | {p.gp, name}
        # every restricted patient gets an SCR, a flag and a CP-IS plan as the seed would make them, so that every
        # route has a success path to check
        if store.scr_record(p.nhs) is None or store.scr_record(p.nhs).latest is None:
            store.put_scr_seed([(p.nhs, "Ask")], [document_for(row, 7)], now=datetime.now(UTC))
        if not store.flags_for_patient(p.nhs, statuses=(ACTIVE,)):
            store.put_flags([flag_for(row, 7, codes)])
        if not store.cpis_plans(p.nhs, ended_on_or_after=today):
            store.put_cpis_plans([CpisPlan(f"leak-{p.nhs}", p.nhs, "CPP", "TLA01", today - timedelta(days=30))])
        assert p.gp in json.dumps(store.scr_record(p.nhs).latest.bundle)  # the practice wrote it: not vacuous
        assert p.gp in json.dumps(store.flags_for_patient(p.nhs, statuses=(ACTIVE,))[0].resource)
        # the patient's own practice acts: a CP-IS access (so the history and a notification name it) and a
        # consent preference (so the audit trail does)
        urid = practice_urid[p.nhs] = f"lk-practice-{p.nhs}"
        practice_name[p.nhs] = name
        store.add_role_profile(RoleProfile(urid, "practice", p.gp, name, "S8000:G8000:R8000", "Clinical",
                                           PRACTICE_ACTIVITIES))
        w.users[urid] = "practice"
        r = env.http.get(f"{live.url}{CPIS_BASE}/CareTeam", params={"patient:identifier": f"{NHS_SYSTEM}|{p.nhs}"},
                         headers=w.headers(urid, IsUnscheduledAccessEvent="true"))
        assert r.status_code == 200 and r.json()["total"] >= 1, r.text
        assert w.permission(urid, p.nhs, "Ask", name="setPermissions").status_code == 201
    return Watch(env, w, forbidden, withheld_pattern(forbidden), practice_urid, practice_name)


def upload_body(w: ScrWorld, nhs: str) -> dict[str, Any]:
    """A well-formed new version of the patient's SCR, written at LEAK_ORG, replacing the latest."""
    row = w.store.get_patient(nhs)
    bundle = document_for(replace(row, gp_ods=LEAK_ORG), 4321).bundle
    bundle["entry"][0]["resource"]["relatesTo"] = [{"code": "replaces",
                                                    "targetIdentifier": {"value": w.latest(nhs)}}]
    return bundle


def test_scr_never_carries_withheld_fields(watch: Watch, trap: pytest.LogCaptureFixture) -> None:
    w = watch.w
    for p in watch.env.patients:
        n = p.nhs

        def c(label: str, r: httpx.Response, *expected: int, n: str = n) -> httpx.Response:
            return watch.check(f"{n} SCR {label}", r, *expected)

        assert c("index", w.index("lk-view", n), 200).json()["total"] == 1
        c("index without B0370", w.index("lk-trace", n), 403)
        c("index, no role activities", w.index("lk-none", n), 403)
        c("index, bad parameter", w.http.get(f"{w.base}/DocumentReference", params={"patient": f"x|{n}"},
                                             headers=w.headers("lk-view")), 400)
        c("read, no relationship", w.read("lk-view", n), 403)
        c("read, bad query", w.http.get(f"{w.base}/Bundle", params={"composition.identifier": "x"},
                                        headers=w.headers("lk-view")), 400)
        c("consent without B0020", w.permission("lk-view", n, "Ask", name="setPermissions"), 403)
        c("consent, no relationship", w.permission("lk-consent", n, "No", name="setPermissions"), 403)
        c("self-claim to record consent", w.alert("lk-consent", n, 1, 6, None), 201)
        c("consent under the self-claim", w.permission("lk-consent", n, "Ask", name="setPermissions"), 201)
        c("$setPermission, bad body", w.post("lk-view", "/$setPermission", {"resourceType": "Parameters"}), 400)
        c("access alert without a relationship", w.alert("lk-emergency", n, 2, 5), 403)
        c("alert 1/5 (not permitted)", w.alert("lk-emergency", n, 1, 5), 400)
        c("emergency without a reason", w.alert("lk-emergency", n, 1, 4, None), 400)
        c("emergency without B0168", w.alert("lk-view", n, 1, 4), 403)
        c("self-claim", w.alert("lk-view", n, 1, 6, None), 201)
        c("permission refused", w.permission("lk-view", n, "No"), 201)
        c("read, permission refused", w.read("lk-view", n), 403)
        rid = str(uuid.uuid4())
        c("permission given", w.permission("lk-view", n, "Yes", request_id=rid), 201)
        c("permission given, replayed", w.permission("lk-view", n, "Yes", request_id=rid), 201)
        assert c("read with permission", w.read("lk-view", n), 200).json()["total"] > 0
        assert c("read, out-of-date id", w.read("lk-view", n, scr_id=str(uuid.uuid4()).upper()), 200).json()[
            "total"] == 0
        c("emergency self-claim", w.alert("lk-emergency", n, 1, 4), 201)
        assert c("read in an emergency", w.read("lk-emergency", n), 200).json()["total"] > 0
        c("legal override", w.alert("lk-legal", n, 1, 3, "Court order 2026/17"), 201)
        assert c("read under a legal override", w.read("lk-legal", n), 200).json()["total"] > 0
        body = upload_body(w, n)
        c("upload for another practice", w.post("lk-upload", "/Bundle", body), 403)
        c("upload, wrong media type", w.post("lk-upload", "/Bundle", body, content_type="application/json"), 415)
        c("upload, not a Bundle", w.post("lk-upload", "/Bundle", {"resourceType": "Bundle"}), 400)
        c("upload without B0360", w.post("lk-view", "/Bundle", body), 403)
    # the privacy officers' queue, which now holds the alerts raised above
    queue = watch.get("SCR alert queue", f"{SCR_BASE}/alerts", "lk-po", 200, params={"status": "all"}).json()
    assert queue["total"] >= 3 * len(watch.env.patients)
    watch.get("SCR self-claim queue", f"{SCR_BASE}/alerts", "lk-po16", 200)
    watch.get("SCR alert queue, bad status", f"{SCR_BASE}/alerts", "lk-po", 400, params={"status": "x"})
    first = queue["entry"][0]["resource"]["id"]
    for label, alert_id, expected in (("acknowledge", first, 200), ("acknowledge again", first, 409),
                                      ("acknowledge unknown", str(uuid.uuid4()), 404)):
        watch.send(f"SCR {label}", "POST", f"{SCR_BASE}/alerts/{alert_id}/$acknowledge", "lk-po", {
            "resourceType": "Parameters", "parameter": [{"name": "note", "valueString": "Seen"}]}, expected)
    watch.verdict(trap)


def test_cpis_never_carries_withheld_fields(watch: Watch, trap: pytest.LogCaptureFixture) -> None:
    store = watch.env.live.store
    for p in watch.env.patients:
        n = p.nhs
        params = {"patient:identifier": f"{NHS_SYSTEM}|{n}"}
        team = f"{CPIS_BASE}/CareTeam"
        found = watch.get(f"{n} CP-IS unscheduled", team, "lk-cpis-u", 200, params=params).json()
        assert found["total"] >= 1
        watch.get(f"{n} CP-IS not notified", team, "lk-cpis-s", 200, params=params, IsUnscheduledAccessEvent="true")
        watch.get(f"{n} CP-IS scheduled", team, "lk-cpis-s", 200, params=params, IsUnscheduledAccessEvent="false")
        watch.get(f"{n} CP-IS bad header", team, "lk-cpis-u", 400, params=params, IsUnscheduledAccessEvent="perhaps")
        watch.get(f"{n} CP-IS bad parameter", team, "lk-cpis-u", 400, params={"patient": n})
        watch.get(f"{n} CP-IS without an activity", team, "lk-view", 403, params=params)
        history = watch.get(f"{n} CP-IS history", f"{CPIS_BASE}/AuditEvent", "lk-cpis-s", 200, params=params).json()
        assert history["total"] >= 2  # the practice's access and LEAK_ORG's
        watch.get(f"{n} CP-IS history, bad number", f"{CPIS_BASE}/AuditEvent", "lk-cpis-s", 400,
                  params={"patient:identifier": "123"})
        # the notification of the practice's access, as the deliverer sends it to the local authority's inbox
        # (sent here rather than waited for: no timing)
        plan = store.cpis_plans(n, ended_on_or_after=datetime.now(UTC).date())[0][0]
        la = store.local_authority(plan.la_code)
        key = str(uuid.uuid4())
        who = {"userId": "practice", "userName": "Practice Clinician", "roleCode": "S8000:G8000:R8000",
               "roleName": "Clinical", "organisationCode": p.gp, "organisationName": watch.practice_name[n]}
        payload = json.dumps(cpis_rules.notification_payload(key, la.code, n, datetime.now(UTC), who, [plan.id]))
        inbox = INBOX_PATH.replace("{code}", la.code)
        r = watch.w.http.post(f"{watch.env.live.url}{inbox}", content=payload.encode(), headers={
            "Content-Type": "application/json", "Idempotency-Key": key,
            "X-CPIS-Signature": cpis_rules.sign(la.secret, key, payload.encode())})
        watch.check(f"{n} CP-IS notification received", r, 201)
        r = watch.w.http.post(f"{watch.env.live.url}{inbox}", content=payload.encode(), headers={
            "Content-Type": "application/json", "Idempotency-Key": key, "X-CPIS-Signature": "sha256=00"})
        watch.check(f"{n} CP-IS notification, bad signature", r, 401)
        # the inbox is listed by the authority's own privacy officer (a role at that authority)
        la_po = f"lk-po-{la.code}"
        if store.get_role_profile(la_po) is None:
            store.add_role_profile(RoleProfile(la_po, "leaky", la.code, la.name, "S8002:G8003:R8014", "Privacy",
                                               ("B0015",)))
            watch.w.users[la_po] = "leaky"
        listed = watch.get(f"{n} CP-IS inbox", inbox, la_po, 200).json()
        assert key in [i["id"] for i in listed["notifications"]]
        watch.get(f"{n} CP-IS inbox, bad count", inbox, la_po, 400, params={"_count": "0"})
        watch.get(f"{n} CP-IS inbox without B0015", inbox, "lk-view", 403)
        watch.get(f"{n} CP-IS inbox of another organisation", inbox, "lk-po", 403)
    watch.verdict(trap)


def test_flags_never_carry_withheld_fields(watch: Watch, trap: pytest.LogCaptureFixture) -> None:
    store = watch.env.live.store
    for p in watch.env.patients:
        n = p.nhs
        flag = store.flags_for_patient(n, statuses=(ACTIVE,))[0]
        one = f"{FLAGS_BASE}/Flag/{flag.id}"

        def c(label: str, method: str, path: str, urid: str, body: Any, *expected: int, n: str = n,
              **headers: str) -> httpx.Response:
            return watch.send(f"{n} flags {label}", method, path, urid, body, *expected, **headers)

        for urid in ("lk-trace", "lk-flags"):  # without and with the content
            found = watch.get(f"{n} flags search as {urid}", f"{FLAGS_BASE}/Flag", urid, 200,
                              params={"patient": f"{NHS_SYSTEM}|{n}"}).json()
            assert flag.id in [e["resource"]["id"] for e in found["entry"]]
            watch.get(f"{n} flag read as {urid}", one, urid, 200)
            watch.get(f"{n} flag history as {urid}", f"{one}/_history", urid, 200)
            watch.get(f"{n} flag version 1 as {urid}", f"{one}/_history/1", urid, 200)
            watch.get(f"{n} flag version 99 as {urid}", f"{one}/_history/99", urid, 404)
        watch.get(f"{n} flags search, bad parameter", f"{FLAGS_BASE}/Flag", "lk-trace", 400,
                  params={"patient": n, "colour": "red"})
        watch.get(f"{n} flags search without an activity", f"{FLAGS_BASE}/Flag", "lk-none", 403,
                  params={"patient": n})
        c("create, one is active", "POST", f"{FLAGS_BASE}/Flag", "lk-flags", flag_body(n), 409)
        c("create, not JSON", "POST", f"{FLAGS_BASE}/Flag", "lk-flags", b"{", 400)
        c("create, wrong media type", "POST", f"{FLAGS_BASE}/Flag", "lk-flags", flag_body(n), 415,
          content_type="text/plain")
        c("create without B0360", "POST", f"{FLAGS_BASE}/Flag", "lk-trace", flag_body(n), 403)
        body = dict(flag_body(n), id=flag.id)
        c("update, no If-Match", "PUT", one, "lk-flags", body, 412)
        c("update, stale", "PUT", one, "lk-flags", body, 409, **{"If-Match": f'W/"{flag.version + 5}"'})
        c("update, invalid", "PUT", one, "lk-flags", dict(body, status="maybe"), 400,
          **{"If-Match": f'W/"{flag.version}"'})
        c("update", "PUT", one, "lk-flags", body, 200, **{"If-Match": f'W/"{flag.version}"'})
        c("remove, stale", "POST", f"{FLAGS_BASE}/$removerarecord", "lk-flags", removal(n), 409,
          **{"If-Match": f'W/"{flag.version}"'})
        c("remove", "POST", f"{FLAGS_BASE}/$removerarecord", "lk-flags", removal(n), 200,
          **{"If-Match": f'W/"{flag.version + 1}"'})
        watch.get(f"{n} flag history after removal", f"{one}/_history", "lk-trace", 200)
    watch.verdict(trap)


def test_audit_query_never_carries_withheld_fields(watch: Watch, trap: pytest.LogCaptureFixture) -> None:
    """Runs after the services above: the trail holds their accesses, the practices' own included."""
    for p in watch.env.patients:
        for urid in ("lk-po", "lk-po16"):
            found = watch.get(f"{p.nhs} audit query as {urid}", "/audit/records", urid, 200,
                              params={"patient": p.nhs, "_count": "1000"}).json()["records"]
            assert {r["nhs_number"] for r in found} == {p.nhs}
            # scoped to the officer's organisation: LEAK_ORG's accesses, not the practice's
            assert {r["org"] for r in found} == {LEAK_ORG}
            assert watch.practice_urid[p.nhs] not in {r["role_profile"] for r in found}
    watch.get("whole audit trail", "/audit/records", "lk-po", 200, params={"_count": "1000"})
    watch.get("audit query, bad parameter", "/audit/records", "lk-po", 400, params={"patient": "123"})
    watch.get("audit query without an activity", "/audit/records", "lk-view", 403)
    assert watch.env.live.store.verify_audit().ok
    watch.verdict(trap)


def restricted_entries(bundle: dict[str, Any]) -> list[tuple[str, float]]:
    """The restricted (R or V) patients a search returned, in the order returned, with their scores."""
    return [(e["resource"]["id"], e["search"]["score"]) for e in bundle.get("entry", [])
            if e["resource"]["meta"]["security"][0]["code"] in ("R", "V")]


def test_email_and_phone_searches_do_not_confirm_withheld_telecoms(env: Env) -> None:
    """Searching with a restricted patient's real phone number (or e-mail) must not behave differently from
    searching with a wrong one: otherwise anyone with B0264 can confirm a guessed phone number or e-mail. Whether
    the patient is returned, with what score and in what order among the restricted patients returned, is the
    same for the right and the wrong value — in exact, fuzzy and ``_exact-match`` searches, with history too."""
    for p in env.patients:
        guesses = [("phone", p.phone, "01632960999" if p.phone != "01632960999" else "01632960998")]
        if p.email:
            guesses.append(("email", p.email, "wrong.guess@example.com"))
        for label, base in (
                ("exact", {"family": p.family, "birthdate": f"eq{p.birth_date}"}),
                ("exact-match", {"family": p.family, "given": p.given, "birthdate": f"eq{p.birth_date}",
                                 "_exact-match": "true"}),
                ("history", {"family": p.family, "birthdate": f"eq{p.birth_date}", "_history": "true"}),
                ("fuzzy", {"family": p.family, "given": p.given, "birthdate": f"eq{p.birth_date}",
                           "_fuzzy-match": "true"})):
            for name, real, wrong in guesses:
                answers = []
                for value in (real, wrong):
                    r = env.get(f"{p.nhs} search {label} by {name}", env.live.pds("/Patient"),
                                env.token("clerk-1"), "clerk-1",
                                params={**base, name: value})
                    assert r.status_code == 200, r.text
                    check_entry(f"{p.nhs} search {label} by {name}", r.json(), p)
                    answers.append(restricted_entries(r.json()))
                right, other = answers
                assert p.nhs in [n for n, _ in right], f"{label} by {name}: name and birth date match {p.nhs}"
                assert right == other, f"{label} {name} search is an oracle for {p.nhs}: {right} vs {other}"


def test_zz_no_collected_response_carries_a_canary(env: Env) -> None:
    """Runs last: every body collected above (search bundles with other patients included) is canary-free, and
    the collection is not trivially small."""
    canaries = set().union(*(p.canaries for p in env.patients))
    assert len(env.bodies) >= 30 * len(env.patients) // 2, len(env.bodies)
    for label, text in env.bodies:
        assert_clean(label, text, canaries)


# --- known oracles on restricted data (app bugs; see the report) -----------------------------------------------


def test_patch_test_operation_is_not_an_oracle(env: Env) -> None:
    p = env.patients[0]
    outcomes = []
    for guess in (p.postcode, "ZZ1 1ZZ"):
        version = env.live.store.get_patient(p.nhs).version
        body = {"patches": [{"op": "test", "path": "/address/0/postalCode", "value": guess},
                            {"op": "replace", "path": "/gender", "value": p.gender}]}
        r = env.http.patch(env.live.pds(f"/Patient/{p.nhs}"), json=body, headers=env.live.headers(
            env.token("clin-1"), "clin-1",
            **{"If-Match": f'W/"{version}"', "Content-Type": "application/json-patch+json"}))
        outcomes.append((r.status_code, r.json().get("issue", [{}])[0].get("diagnostics")))
    assert outcomes[0] == outcomes[1], f"right vs wrong postcode guess: {outcomes}"


def test_patch_diagnostics_describe_no_withheld_item(env: Env) -> None:
    p = next(x for x in env.patients if x.nhs == "9000000025")
    stored = env.live.store.get_patient(p.nhs).resource
    withheld_ids = {i["id"] for f in ("address", "telecom") for i in stored.get(f, []) if "id" in i}
    answers = []
    for path in ("/telecom/0/id", "/telecom/40/id"):
        version = env.live.store.get_patient(p.nhs).version
        r = env.http.patch(env.live.pds(f"/Patient/{p.nhs}"), json={"patches": [
            {"op": "replace", "path": path, "value": "X"}]}, headers=env.live.headers(
            env.token("clin-1"), "clin-1",
            **{"If-Match": f'W/"{version}"', "Content-Type": "application/json-patch+json"}))
        answers.append(r.json()["issue"][0].get("diagnostics", ""))
        assert_clean(f"PATCH {path}", r.text, withheld_ids)
    assert answers[0].replace("/0/", "/N/") == answers[1].replace("/40/", "/N/"), answers
