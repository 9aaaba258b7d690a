"""Build an SCR FHIR document Bundle (what POST /Bundle takes and GET /Bundle returns) from coded items.

The Composition's sections follow the SCR specification's example (section codes ``AllergiesHeader``,
``AcuteMedsHeader``, ``RepeatMedsHeader``, ``DiscRepeatMedsHeader``, … with an XHTML table each); every row is
also a coded resource the section references: AllergyIntolerance, MedicationStatement, Condition, Procedure,
Immunization (FHIR R4 core; SNOMED CT codes from the training reference set in ``resources/scr/``).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from app.service.scr.fhir import (
    CARE_PROFESSIONAL_DOCUMENTATION,
    GP_SUMMARY,
    NHS_NUMBER_SYSTEM,
    ODS_SYSTEM,
    RFC4122,
    SDS_ROLE_SYSTEM,
    SDS_USER_SYSTEM,
    SNOMED,
    patient_resource_id,
)

VERIFICATION_URL = "https://fhir.hl7.org.uk/STU3/StructureDefinition/Extension-CareConnect-NHSNumberVerificationStatus-1"
VERIFICATION_SYSTEM = "https://fhir.hl7.org.uk/STU3/CodeSystem/CareConnect-NHSNumberVerificationStatus-1"
NOTHING = "No relevant information available for this category."


@dataclass(frozen=True)
class Coded:
    code: str | None
    display: str


@dataclass(frozen=True)
class AllergyItem:
    code: Coded
    substance: Coded
    reaction: str
    recorded: date
    kind: str = "allergy"  # "allergy" | "intolerance" (adverse reaction) | "none" (no known allergy)
    severity: str | None = None


@dataclass(frozen=True)
class MedicationItem:
    product: str
    substance: Coded
    dose: str
    quantity: str
    date: date
    status: str  # "acute" | "repeat" | "discontinued"


@dataclass(frozen=True)
class ClinicalItem:
    code: Coded
    date: date
    section: str  # "problem" | "procedure" | "immunisation" | "preference"


@dataclass(frozen=True)
class Author:
    user_id: str
    name: str
    role_profile_id: str
    org_ods: str
    org_name: str


@dataclass
class Content:
    allergies: list[AllergyItem] = field(default_factory=list)
    medications: list[MedicationItem] = field(default_factory=list)
    additional: list[ClinicalItem] = field(default_factory=list)


_esc = lru_cache(maxsize=8192)(html.escape)  # the same few hundred reference-set strings, over and over


def _day(d: date) -> str:
    return d.strftime("%d-%b-%Y")


def _coding(c: Coded) -> dict[str, Any]:
    return {"system": SNOMED, "code": c.code, "display": c.display} if c.code else {}


def _concept(c: Coded) -> dict[str, Any]:
    coding = _coding(c)
    return {"coding": [coding], "text": c.display} if coding else {"text": c.display}


def _table(table_id: str, summary: str, head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    th = "".join(f"<th>{_esc(h)}</th>" for h in head)
    if rows:
        body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in r) + "</tr>" for r in rows)
    else:
        body = f'<tr><td colspan="{len(head)}">{NOTHING}</td></tr>'
    return (f'<div xmlns="http://www.w3.org/1999/xhtml"><table summary="{html.escape(summary)}" id="{table_id}">'
            f"<thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>")


class _Builder:
    def __init__(self, nhs: str, new_id: Callable[[], str]) -> None:
        self.nhs, self.new_id = nhs, new_id
        self.patient = f"Patient/{patient_resource_id(nhs)}"
        self.entries: list[dict[str, Any]] = []

    def add(self, resource: dict[str, Any]) -> str:
        rid = self.new_id()
        resource = {"resourceType": resource["resourceType"], "id": rid, **resource}
        self.entries.append({"fullUrl": f"urn:uuid:{rid.lower()}", "resource": resource})
        return f"{resource['resourceType']}/{rid}"

    def allergy(self, a: AllergyItem) -> str:
        res: dict[str, Any] = {"resourceType": "AllergyIntolerance", "code": _concept(a.code), "patient": {
            "reference": self.patient}, "recordedDate": a.recorded.isoformat()}
        if a.kind != "none":
            res |= {"clinicalStatus": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active"}]},
                "verificationStatus": {"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
                    "code": "confirmed"}]},
                "type": a.kind, "reaction": [{"substance": _concept(a.substance),
                                              "manifestation": [{"text": a.reaction}],
                                              **({"severity": a.severity} if a.severity else {})}]}
        return self.add(res)

    def medication(self, m: MedicationItem) -> str:
        status = {"acute": "completed", "repeat": "active", "discontinued": "stopped"}[m.status]
        return self.add({"resourceType": "MedicationStatement", "status": status,
                         "medicationCodeableConcept": {"coding": [_coding(m.substance)], "text": m.product},
                         "subject": {"reference": self.patient}, "effectiveDateTime": m.date.isoformat(),
                         "dosage": [{"text": m.dose}], "note": [{"text": f"Quantity: {m.quantity}"}]})

    def clinical(self, c: ClinicalItem) -> str:
        if c.section == "procedure":
            return self.add({"resourceType": "Procedure", "status": "completed", "code": _concept(c.code),
                             "subject": {"reference": self.patient}, "performedDateTime": c.date.isoformat()})
        if c.section == "immunisation":
            return self.add({"resourceType": "Immunization", "status": "completed", "vaccineCode": _concept(c.code),
                             "patient": {"reference": self.patient}, "occurrenceDateTime": c.date.isoformat()})
        ident = self.new_id()
        return self.add({"resourceType": "Condition", "identifier": [{"value": ident}],
                         "clinicalStatus": {"coding": [{
                             "system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active",
                             "display": "Active"}]},
                         "category": [{"coding": [{"system": SNOMED, "code": "163001000000103",
                                                   "display": "Diagnoses"}]} if c.section == "problem" else
                                      {"text": "Personal preferences"}],
                         "code": {"coding": [_coding(c.code)]}, "subject": {"reference": self.patient},
                         "onsetDateTime": c.date.isoformat(), "recordedDate": c.date.isoformat()})


def _section(title: str, code: str, div: str, refs: Sequence[str]) -> dict[str, Any]:
    section: dict[str, Any] = {"title": title, "code": {"coding": [{"code": code}]},
                               "text": {"status": "generated", "div": div}}
    if refs:
        section["entry"] = [{"reference": r} for r in refs]
    return section


def build_document(nhs: str, content: Content, author: Author, *, scr_id: str, created: datetime,
                   new_id: Callable[[], str], replaces: str | None = None) -> dict[str, Any]:
    """A complete SCR document Bundle for ``nhs``. ``new_id`` makes resource ids (upper-case UUIDs)."""
    b = _Builder(nhs, new_id)
    b.entries.append({"fullUrl": f"urn:uuid:{patient_resource_id(nhs)}", "resource": {
        "resourceType": "Patient", "id": patient_resource_id(nhs), "identifier": [{
            "extension": [{"url": VERIFICATION_URL, "valueCodeableConcept": {"coding": [{
                "system": VERIFICATION_SYSTEM, "code": "01", "display": "Number present and verified"}]}}],
            "system": NHS_NUMBER_SYSTEM, "value": nhs}]}})
    org = b.add({"resourceType": "Organization", "identifier": [{"system": ODS_SYSTEM, "value": author.org_ods}],
                 "name": author.org_name})
    person = b.add({"resourceType": "Practitioner", "identifier": [{"system": SDS_USER_SYSTEM,
                                                                    "value": author.user_id}],
                    "name": [{"text": author.name}]})
    role = b.add({"resourceType": "PractitionerRole", "identifier": [{"system": SDS_ROLE_SYSTEM,
                                                                      "value": author.role_profile_id}],
                  "practitioner": {"reference": person}, "organization": {"reference": org}})
    allergy_rows = [(_day(a.recorded), a.code.display if a.kind != "intolerance" else
                     f"{a.code.display}: {a.substance.display}", a.reaction, a.severity or "")
                    for a in content.allergies]
    allergy_refs = [b.allergy(a) for a in content.allergies]
    sections = [_section("General Practice Summary", "Title",
                         '<div xmlns="http://www.w3.org/1999/xhtml"><h3 id="Disclaimer">Sourced from the patient\'s '
                         "General Practice record. This summary may not include all the information pertinent to "
                         f'this patient.</h3><p id="CreateTime">Summary Created: {_day(created.date())} '
                         f'{created:%H:%M}</p><p id="Author">Created by: {html.escape(author.name)}</p>'
                         f'<p id="Practice">{html.escape(author.org_name)} ({author.org_ods})</p></div>', []),
                _section("Allergies and Adverse Reactions", "AllergiesHeader",
                         _table("Allergies", "This table includes information about this patient's allergies and "
                                "adverse reactions.", ("Date", "Description", "Reaction", "Severity"), allergy_rows),
                         allergy_refs)]
    for status, title, code, table_id in (
            ("acute", "Acute Medications (For the 12 month period before the summary)", "AcuteMedsHeader", "AcuteMeds"),
            ("repeat", "Current Repeat Medications", "RepeatMedsHeader", "RepeatMeds"),
            ("discontinued", "Discontinued Repeat Medications (For the 6 month period before the summary)",
             "DiscRepeatMedsHeader", "DiscRepeatMeds")):
        meds = [m for m in content.medications if m.status == status]
        label = {"acute": "Prescribed", "repeat": "Last Issued", "discontinued": "Discontinued"}[status]
        rows = [(title.split(" (")[0].rstrip("s"), f"{label}: {_day(m.date)}", m.product, m.dose, m.quantity)
                for m in meds]
        sections.append(_section(title, code, _table(table_id, f"This table includes information about this "
                                                     f"patient's {title.split(' (')[0].lower()}.",
                                                     ("Type", "Date", "Medication Item", "Dosage Instructions",
                                                      "Quantity"), rows), [b.medication(m) for m in meds]))
    for section, title, code, table_id in (
            ("problem", "Problems and Issues", "ProblemsHeader", "Problems"),
            ("procedure", "Treatments", "TreatmentsHeader", "Treatments"),
            ("immunisation", "Immunisations", "ImmunisationsHeader", "Immunisations"),
            ("preference", "Personal Preferences", "PersonalPreferencesHeader", "PersonalPreferences")):
        items = [c for c in content.additional if c.section == section]
        if items:
            rows = [(_day(c.date), c.code.display, "Significant Active" if section == "problem" else "")
                    for c in items]
            sections.append(_section(title, code, _table(table_id, f"Additional information: {title.lower()}.",
                                                         ("Date", "Description", "Additional information"), rows),
                                     [b.clinical(c) for c in items]))
    composition: dict[str, Any] = {
        "resourceType": "Composition", "id": scr_id, "meta": {"lastUpdated": created.isoformat(timespec="seconds")},
        "identifier": {"system": RFC4122, "value": scr_id}, "status": "final", "type": {"coding": [dict(GP_SUMMARY)]},
        "category": [{"coding": [dict(CARE_PROFESSIONAL_DOCUMENTATION)]}], "subject": {"reference": b.patient},
        "date": created.isoformat(timespec="seconds"), "author": [{"reference": role, "display": author.name}],
        "title": "General Practice Summary", "section": sections}
    if replaces:
        composition["relatesTo"] = [{"code": "replaces", "targetIdentifier": {"value": replaces}}]
    return {"resourceType": "Bundle", "id": new_id(), "identifier": {"system": RFC4122, "value": new_id()},
            "type": "document", "timestamp": created.isoformat(timespec="seconds"),
            "entry": [{"fullUrl": f"urn:uuid:{scr_id.lower()}", "resource": composition}, *b.entries]}
