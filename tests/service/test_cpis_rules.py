"""CP-IS rules without I/O: the search parameter, the header, who notifies, the window, ids, signing, backoff."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from app.service.core.outcome import FhirError
from app.service.cpis import rules

ROOT = Path(__file__).resolve().parents[2]
SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"


@pytest.mark.parametrize("value", [f"{SYSTEM}|9434765919", "9434765919"])
def test_parse_patient(value: str) -> None:
    assert rules.parse_patient({"patient:identifier": [value]}) == "9434765919"


@pytest.mark.parametrize("query", [
    {}, {"patient:identifier": []}, {"patient:identifier": [f"{SYSTEM}|9434765919"] * 2},
    {"patient:identifier": [f"{SYSTEM}|9434765918"]}, {"patient:identifier": [f"{SYSTEM}|9000000000"]},
    {"patient:identifier": ["http://other|9434765919"]}, {"patient:identifier": [f"{SYSTEM}|"]},
    {"patient:identifier": [f"{SYSTEM}|9434765919"], "_count": ["1"]}, {"patient": ["9434765919"]},
])
def test_parse_patient_rejects(query: dict) -> None:
    with pytest.raises(FhirError) as caught:
        rules.parse_patient(query)
    assert (caught.value.spine_code, caught.value.status, caught.value.issue_code) == (
        "INVALID_SEARCH_DATA", 400, "invalid")


def test_lenient_nhs_number_is_only_ever_a_valid_one() -> None:
    assert rules.lenient_nhs_number({"patient:identifier": [f"{SYSTEM}|9434765919"]}) == "9434765919"
    assert rules.lenient_nhs_number({"patient:identifier": [f"{SYSTEM}|9434765918"]}) is None
    assert rules.lenient_nhs_number({}) is None


@pytest.mark.parametrize(("value", "expected"), [(None, True), ("true", True), ("True", True), (" false ", False)])
def test_parse_unscheduled(value: str | None, expected: bool) -> None:
    assert rules.parse_unscheduled(value) is expected


@pytest.mark.parametrize("value", ["", "yes", "1", "truee"])
def test_parse_unscheduled_rejects(value: str) -> None:
    with pytest.raises(FhirError) as caught:
        rules.parse_unscheduled(value)
    assert (caught.value.spine_code, caught.value.status) == ("PRECONDITION_FAILED", 400)


@pytest.mark.parametrize(("activities", "unscheduled", "notify", "reason"), [
    (("B0107",), True, True, "unscheduled"),
    (("B0107",), False, True, "unscheduled_by_role"),  # B0107 without B0170: the header cannot opt out
    (("B0170",), True, False, "unscheduled_denied"),
    (("B0170",), False, False, "scheduled"),
    (("B0107", "B0170"), True, True, "unscheduled"),
    (("B0107", "B0170"), False, False, "scheduled"),
])
def test_decide_access(activities: tuple, unscheduled: bool, notify: bool, reason: str) -> None:
    mode = rules.decide_access(activities, unscheduled)
    assert (mode.notify, mode.reason, mode.unscheduled_requested) == (notify, reason, unscheduled)


@pytest.mark.parametrize("activities", [("B0107",), ("B0264", "B0107"), ("B0107", "B0015")])
def test_a_role_that_cannot_view_scheduled_always_notifies(activities: tuple) -> None:
    """Only B0170 allows a non-notifying view: whatever the header says, B0107 without B0170 notifies."""
    for requested in (True, False):
        assert rules.decide_access(activities, requested).notify


def test_window_is_12_months() -> None:
    assert rules.window_start(date(2026, 6, 15)) == date(2025, 6, 15)
    assert rules.window_start(date(2028, 2, 29)) == date(2027, 2, 28)
    assert rules.is_open(None, date(2026, 1, 1)) and rules.is_open(date(2026, 1, 1), date(2026, 1, 1))
    assert not rules.is_open(date(2025, 12, 31), date(2026, 1, 1))


def test_ids_are_stable_per_request_and_authority() -> None:
    a = rules.access_id("alice", "r-1")
    assert a == rules.access_id("alice", "r-1") != rules.access_id("bob", "r-1") != rules.access_id("alice", "r-2")
    assert rules.notification_id(a, "TLA01") != rules.notification_id(a, "TLA02")


def test_signatures() -> None:
    sig = rules.sign("k", "key-1", b"{}")
    assert sig.startswith("sha256=") and len(sig) == 71
    assert rules.signature_ok("k", "key-1", b"{}", sig)
    assert not rules.signature_ok("k", "key-2", b"{}", sig)
    assert not rules.signature_ok("k", "key-1", b"{ }", sig)
    assert not rules.signature_ok("", "key-1", b"{}", rules.sign("", "key-1", b"{}"))
    assert not rules.signature_ok("k", "key-1", b"{}", None)


def test_backoff_doubles_to_a_cap() -> None:
    assert [rules.backoff_seconds(n) for n in (1, 2, 3, 4, 10, 50)] == [1, 2, 4, 8, 300, 300]
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert (rules.retry_at(now, 3) - now).total_seconds() == 4


def test_payload_names_patient_accessor_and_plans() -> None:
    at = datetime(2026, 1, 1, 12, tzinfo=UTC)
    doc = rules.notification_payload("k", "TLA01", "9434765919", at, {"userId": "u"}, ["p1"])
    assert doc == {"resourceType": "AccessToServiceNotification", "id": "k", "localAuthority": "TLA01",
                   "patient": {"system": SYSTEM, "value": "9434765919"}, "accessedAt": at.isoformat(),
                   "accessedBy": {"userId": "u"}, "plans": ["p1"]}


def test_plan_types_match_the_reference_file() -> None:
    doc = json.loads((ROOT / "resources" / "cpis" / "plan_types.json").read_text())
    assert {t["key"]: (t["code"], t["display"]) for t in doc["plan_types"]} == dict(rules.PLAN_TYPES)
