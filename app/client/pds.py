"""Personal Demographics Service calls: read, search and contact-detail PATCH, with typed results and errors."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

from app.client.api import SpineApi
from app.client.models import Auth
from app.client.pds_models import Address, Patient, SearchQuery, SearchResults, Telecom, parse_patient, parse_search
from app.errors import PatientNotFound, RecordChanged, ServiceRejected
from app.nhs_number import check_input
from app.protocol import PDS_BASE

_ETAG = re.compile(r'W/"([0-9]+)"')
PHONE_USES = ("home", "work", "mobile")


def _version(etag: str | None) -> int | None:
    match = _ETAG.fullmatch((etag or "").strip())
    return int(match.group(1)) if match else None


class Pds:
    """PDS for one logged-in role. ``today`` decides which addresses and phones are current."""

    def __init__(self, client: SpineApi, auth: Auth, today: Callable[[], date] = date.today) -> None:
        self._client = client
        self._auth = auth
        self._today = today

    def read(self, nhs_number: str) -> Patient:
        """The patient's current record (a merged record comes back under its new number)."""
        check = check_input(nhs_number)
        if not check.valid:
            raise ServiceRejected(400, "INVALID_RESOURCE_ID", check.message or "not an NHS number")
        try:
            doc, etag = self._client.fhir("GET", f"{PDS_BASE}/Patient/{check.digits}", self._auth)
        except ServiceRejected as exc:
            raise _typed(exc, check.digits) from exc
        return parse_patient(doc, _version(etag), today=self._today())

    def search(self, query: SearchQuery) -> SearchResults:
        doc, _ = self._client.fhir("GET", f"{PDS_BASE}/Patient", self._auth, params=query.params())
        return parse_search(doc, today=self._today())

    def update_contact(self, patient: Patient, *, address: tuple[tuple[str, ...], str] | None = None,
                       phones: Mapping[str, str] | None = None) -> Patient:
        """Change the home address (lines, postcode) and/or phone numbers by use (empty removes one).

        Sent with ``If-Match`` for the version ``patient`` was read at: a record changed meanwhile raises
        :class:`RecordChanged` and nothing is overwritten.
        """
        patches = contact_patches(patient, address=address, phones=phones or {}, today=self._today())
        if not patches:
            return patient
        try:
            doc, etag = self._client.fhir(
                "PATCH", f"{PDS_BASE}/Patient/{patient.nhs_number}", self._auth, body={"patches": patches},
                headers={"Content-Type": "application/json-patch+json", "If-Match": f'W/"{patient.version}"'})
        except ServiceRejected as exc:
            raise _typed(exc, patient.nhs_number) from exc
        return parse_patient(doc, _version(etag), today=self._today())


def _typed(exc: ServiceRejected, nhs_number: str) -> Exception:
    if exc.code == "RESOURCE_VERSION_MISMATCH" or exc.status == 409:
        return RecordChanged(nhs_number)
    if exc.code in ("RESOURCE_NOT_FOUND", "INVALIDATED_RESOURCE") or exc.status == 404:
        return PatientNotFound(nhs_number, invalidated=exc.code == "INVALIDATED_RESOURCE")
    return exc


def _address_value(current: Address | None, lines: tuple[str, ...], postcode: str) -> dict[str, Any]:
    value: dict[str, Any] = dict(current.raw) if current else {"use": "home"}
    value.pop("text", None)  # the free-text form would contradict the new lines
    value["line"] = [line.strip() for line in lines if line.strip()]
    if postcode.strip():
        value["postalCode"] = postcode.strip().upper()
    else:
        value.pop("postalCode", None)
    return value


def _telecom_value(current: Telecom | None, use: str, number: str) -> dict[str, Any]:
    value: dict[str, Any] = dict(current.raw) if current else {"system": "phone", "use": use}
    value["value"] = number.strip()
    return value


def contact_patches(patient: Patient, *, address: tuple[tuple[str, ...], str] | None,
                    phones: Mapping[str, str], today: date | None = None) -> list[dict[str, Any]]:
    """JSON Patch operations (PDS rules: whole-item replace keeps the id; remove follows a test of the id;
    new items go to ``/-``). Replacements come first, removals last-index-first, additions at the end, so
    indices stay right."""
    replaces: list[dict[str, Any]] = []
    removes: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
    adds: list[dict[str, Any]] = []
    if address is not None:
        lines, postcode = address
        home = patient.home_address  # PDS keeps one home address: an ended one is replaced, starting today
        value = _address_value(home, lines, postcode)
        if home is not None and home.ended:
            value["period"] = {"start": (today or date.today()).isoformat()}
        if home is None:
            if value["line"] or value.get("postalCode"):
                adds.append({"op": "add", "path": "/address/-", "value": value})
        elif value != dict(home.raw):
            replaces.append({"op": "replace", "path": f"/address/{home.index}", "value": value})
    for use, number in phones.items():
        if use not in PHONE_USES:
            raise ValueError(f"phone use must be one of {PHONE_USES}")
        current = patient.contact("phone", use)
        if current is None:
            if number.strip():
                adds.append({"op": "add", "path": "/telecom/-", "value": _telecom_value(None, use, number)})
        elif not number.strip():
            test: dict[str, Any] = (
                {"op": "test", "path": f"/telecom/{current.index}/id", "value": current.id} if current.id
                else {"op": "test", "path": f"/telecom/{current.index}", "value": dict(current.raw)})
            removes.append((current.index, test, {"op": "remove", "path": f"/telecom/{current.index}"}))
        elif number.strip() != current.value:
            replaces.append({"op": "replace", "path": f"/telecom/{current.index}",
                             "value": _telecom_value(current, use, number)})
    ordered = [op for _, test, remove in sorted(removes, key=lambda r: -r[0]) for op in (test, remove)]
    return [*replaces, *ordered, *adds]
