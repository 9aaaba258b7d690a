"""FHIR R4 Patient resources as NHS's PDS FHIR API shapes them, their restricted and search views, and rows.

Resources are plain dicts with keys in the order the PDS examples use (``resourceType``, ``id``, ``identifier``,
``meta``, ``name``, ``gender``, ``birthDate``, ...). The store keeps the full resource; what leaves the service
goes through ``read_view`` (retrieval) or ``search_view`` (search results), which apply the restricted-patient
rules. Views copy only what they change: treat their nested values as read-only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from app.nhs_number import NHS_NUMBER_SYSTEM
from app.service.core.etag import etag as etag  # a Patient's ETag (meta.versionId)
from app.service.core.normalise import name_key, postcode_key, soundex
from app.service.store.rows import PatientRow

CONFIDENTIALITY_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
_UKCORE = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-"
VERIFICATION_URL = _UKCORE + "NHSNumberVerificationStatus"
VERIFICATION_SYSTEM = "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatus"
DEATH_NOTIFICATION_URL = _UKCORE + "DeathNotificationStatus"
DEATH_NOTIFICATION_SYSTEM = "https://fhir.hl7.org.uk/CodeSystem/UKCore-DeathNotificationStatus"
BIRTH_PLACE_URL = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
PHARMACY_URLS = frozenset({_UKCORE + "NominatedPharmacy", _UKCORE + "PreferredDispenserOrganization",
                           _UKCORE + "MedicalApplianceSupplier"})

SECURITY_DISPLAY = {"U": "unrestricted", "R": "restricted", "V": "very restricted", "REDACTED": "redacted"}
RESTRICTED_CODES = frozenset({"R", "V"})
VERIFICATION_DISPLAY = {"01": "Number present and verified", "02": "Number present but not traced",
                        "03": "Trace required", "04": "Trace attempted - No match or multiple match found",
                        "05": "Trace needs to be resolved - (NHS number or patient detail conflict)",
                        "06": "Trace in progress", "07": "Number not present and trace not required",
                        "08": "Trace postponed (baby under six weeks old)"}
DEATH_DISPLAY = {"1": "Informal - death notice received via an update from a local NHS Organisation such as GP or"
                      " Trust", "2": "Formal - death notice received from Registrar of Deaths", "U": "Removed"}

# Removed whenever the patient is restricted (meta.security R): location-sensitive data.
RESTRICTED_FIELDS = ("address", "telecom", "contact", "generalPractitioner", "managingOrganization")
SEARCH_NAME_USES = frozenset({"usual", "nickname", "temp"})
SEARCH_FIELDS = ("resourceType", "id", "identifier", "meta", "name", "gender", "birthDate", "multipleBirthInteger",
                 "deceasedDateTime", "address", "telecom", "contact", "generalPractitioner", "extension")


def _period(start: str | None, end: str | None) -> dict[str, str] | None:
    if start is None:
        return None
    return {"start": start, "end": end} if end else {"start": start}


def human_name(family: str, given: Sequence[str] = (), *, use: str = "usual", prefix: Sequence[str] = (),
               suffix: Sequence[str] = (), id: str | None = None, start: str | None = None,
               end: str | None = None) -> dict[str, Any]:
    name: dict[str, Any] = {}
    if id:
        name["id"] = id
    name["use"] = use
    if (period := _period(start, end)) is not None:
        name["period"] = period
    if given:
        name["given"] = list(given)
    name["family"] = family
    if prefix:
        name["prefix"] = list(prefix)
    if suffix:
        name["suffix"] = list(suffix)
    return name


def address(lines: Sequence[str], postcode: str | None, *, use: str = "home", id: str | None = None,
            start: str | None = None, end: str | None = None, text: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {}
    if id:
        item["id"] = id
    if (period := _period(start, end)) is not None:
        item["period"] = period
    item["use"] = use
    if text:
        item["text"] = text
    item["line"] = [line for line in lines if line]  # empty lines are never returned (FHIR conformance)
    if postcode:
        item["postalCode"] = postcode
    return item


def contact_point(system: str, value: str, *, use: str | None = None, id: str | None = None,
                  start: str | None = None, end: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {}
    if id:
        item["id"] = id
    if (period := _period(start, end)) is not None:
        item["period"] = period
    item["system"] = system
    item["value"] = value
    if use:
        item["use"] = use
    return item


def general_practitioner(ods_code: str, *, id: str | None = None, start: str | None = None,
                         end: str | None = None) -> dict[str, Any]:
    identifier: dict[str, Any] = {"system": ODS_SYSTEM, "value": ods_code}
    if (period := _period(start, end)) is not None:
        identifier["period"] = period
    ref: dict[str, Any] = {"id": id} if id else {}
    ref["type"] = "Organization"
    ref["identifier"] = identifier
    return ref


def verification_status(code: str = "01") -> dict[str, Any]:
    return {"url": VERIFICATION_URL, "valueCodeableConcept": {"coding": [{
        "system": VERIFICATION_SYSTEM, "version": "1.0.0", "code": code, "display": VERIFICATION_DISPLAY[code]}]}}


def death_notification(effective: str, code: str = "2") -> dict[str, Any]:
    return {"url": DEATH_NOTIFICATION_URL, "extension": [
        {"url": "deathNotificationStatus", "valueCodeableConcept": {"coding": [{
            "system": DEATH_NOTIFICATION_SYSTEM, "version": "1.0.0", "code": code, "display": DEATH_DISPLAY[code]}]}},
        {"url": "systemEffectiveDate", "valueDateTime": effective},
    ]}


def security_label(code: str = "U") -> dict[str, str]:
    return {"system": CONFIDENTIALITY_SYSTEM, "code": code, "display": SECURITY_DISPLAY[code]}


def patient(nhs_number: str, *, version: int = 1, names: Sequence[Mapping[str, Any]] = (),
            gender: str | None = None, birth_date: str | None = None, multiple_birth: int | None = None,
            deceased: str | None = None, addresses: Sequence[Mapping[str, Any]] = (),
            telecom: Sequence[Mapping[str, Any]] = (), contact: Sequence[Mapping[str, Any]] = (),
            gp: Mapping[str, Any] | None = None, restricted: bool = False, verification: str = "01",
            extensions: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """A Patient resource with the PDS key order; empty parts are left out rather than sent empty."""
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": nhs_number,
        "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": nhs_number,
                        "extension": [verification_status(verification)]}],
        "meta": {"versionId": str(version), "security": [security_label("R" if restricted else "U")]},
    }
    if names:
        resource["name"] = [dict(n) for n in names]
    if gender:
        resource["gender"] = gender
    if birth_date:
        resource["birthDate"] = birth_date
    if multiple_birth is not None:
        resource["multipleBirthInteger"] = multiple_birth
    if deceased:
        resource["deceasedDateTime"] = deceased
    for key, items in (("address", addresses), ("telecom", telecom), ("contact", contact)):
        if items:
            resource[key] = [dict(i) for i in items]
    if gp:
        resource["generalPractitioner"] = [dict(gp)]
    if extensions:
        resource["extension"] = [dict(e) for e in extensions]
    return resource


# --- views ----------------------------------------------------------------------------------------------------


def security_code(resource: Mapping[str, Any]) -> str:
    for label in resource.get("meta", {}).get("security", ()):
        if label.get("code"):
            return str(label["code"])
    return "U"


def is_restricted(resource: Mapping[str, Any]) -> bool:
    """meta.security R (restricted, "sensitive") or V (very restricted)."""
    return security_code(resource) in RESTRICTED_CODES


def _without_restricted(resource: dict[str, Any]) -> dict[str, Any]:
    view = {k: v for k, v in resource.items() if k not in RESTRICTED_FIELDS}
    if "extension" in view:  # pharmacies and place of birth also go (Patient.extension in the specification)
        kept = [e for e in view["extension"] if e.get("url") not in PHARMACY_URLS and e.get("url") != BIRTH_PLACE_URL]
        if kept:
            view["extension"] = kept
        else:
            del view["extension"]
    return view


def _with_version(resource: dict[str, Any], version: int | None) -> dict[str, Any]:
    if version is None or resource.get("meta", {}).get("versionId") == str(version):
        return resource
    return {**resource, "meta": {**resource.get("meta", {}), "versionId": str(version)}}


def restricted_view(resource: Mapping[str, Any]) -> dict[str, Any]:
    """The resource minus address, telecom, contact, generalPractitioner (and related extensions)."""
    return _without_restricted(dict(resource))


def read_view(resource: Mapping[str, Any], version: int | None = None) -> dict[str, Any]:
    """What GET /Patient/{id} returns: the full record, stripped when restricted; versionId set from ``version``."""
    view = _with_version(dict(resource), version)
    return _without_restricted(view) if is_restricted(view) else view


def search_view(resource: Mapping[str, Any], version: int | None = None) -> dict[str, Any]:
    """What a search entry carries: usual/nickname/temp names, the home address, death-notification extension
    only (no place of birth, pharmacies, communication or contact preferences), restricted stripping applied."""
    view = {k: resource[k] for k in SEARCH_FIELDS if k in resource}
    view = _with_version(view, version)
    if "name" in view:
        view["name"] = [n for n in view["name"] if n.get("use") in SEARCH_NAME_USES] or view["name"][:1]
    if "address" in view:
        homes = [a for a in view["address"] if a.get("use") == "home"]
        if homes:
            view["address"] = homes
        else:
            del view["address"]
    if "extension" in view:
        deaths = [e for e in view["extension"] if e.get("url") == DEATH_NOTIFICATION_URL]
        if deaths:
            view["extension"] = deaths
        else:
            del view["extension"]
    return _without_restricted(view) if is_restricted(view) else view


def search_bundle(matches: Iterable[tuple[Mapping[str, Any], float]], *, base_url: str,
                  timestamp: datetime) -> dict[str, Any]:
    """A searchset Bundle; ``matches`` are (already viewed resource, score) best first."""
    entries = [{"fullUrl": f"{base_url.rstrip('/')}/Patient/{resource['id']}", "search": {"score": score},
                "resource": resource} for resource, score in matches]
    return {"resourceType": "Bundle", "type": "searchset",
            "timestamp": timestamp.isoformat(timespec="seconds"), "total": len(entries), "entry": entries}


# --- rows -----------------------------------------------------------------------------------------------------


def parse_fhir_date(value: object) -> date | None:
    """yyyy-mm-dd (or the yyyy-mm / yyyy PDS can hold for poor-quality records, as the first day) -> date."""
    if not isinstance(value, str):
        return None
    parts = value[:10].split("-")
    try:
        numbers = [int(p) for p in parts]
        return date(numbers[0], numbers[1] if len(numbers) > 1 else 1, numbers[2] if len(numbers) > 2 else 1)
    except (ValueError, IndexError):
        return None


def usual_name(resource: Mapping[str, Any]) -> Mapping[str, Any]:
    names = resource.get("name") or ()
    for name in names:
        if name.get("use") == "usual":
            return name
    return names[0] if names else {}


def home_address(resource: Mapping[str, Any]) -> Mapping[str, Any] | None:
    addresses = resource.get("address") or ()
    for item in addresses:
        if item.get("use") == "home":
            return item
    return addresses[0] if addresses else None


def gp_ods_code(resource: Mapping[str, Any]) -> str | None:
    for gp in resource.get("generalPractitioner") or ():
        value = gp.get("identifier", {}).get("value")
        if value:
            return str(value).upper()
    return None


def to_row(resource: Mapping[str, Any], version: int | None = None, *, superseded_by: str | None = None,
           invalidated: bool = False) -> PatientRow:
    """A store row for a full Patient resource, with the normalised search columns filled in."""
    resource = dict(resource)
    if version is None:
        version = int(resource.get("meta", {}).get("versionId") or 1)
    resource = _with_version(resource, version)
    name = usual_name(resource)
    family = name_key(name.get("family") or "")
    given_names = name.get("given") or ()
    given = name_key(given_names[0]) if given_names else ""
    home = home_address(resource)
    return PatientRow(
        nhs_number=resource["id"], version=version, resource=resource,
        family=family, given=given, family_phonetic=soundex(family), given_phonetic=soundex(given),
        birth_date=parse_fhir_date(resource.get("birthDate")), gender=resource.get("gender") or "unknown",
        postcode=postcode_key(home.get("postalCode")) if home else None, gp_ods=gp_ods_code(resource),
        restricted=is_restricted(resource), deceased=bool(resource.get("deceasedDateTime")),
        superseded_by=superseded_by, invalidated=invalidated,
    )
