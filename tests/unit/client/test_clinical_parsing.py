"""Parsing SCR, CP-IS and flag resources into typed models (shapes as the service and NHS's specs give them)."""

from __future__ import annotations

from datetime import date

from app.client.cpis import parse_access, parse_care_team
from app.client.flags import parse_flag
from app.client.scr import parse_alert, parse_record


def test_scr_record():
    bundle = {"entry": [
        {"resource": {"resourceType": "Composition", "date": "2025-01-02T10:00:00+00:00",
                      "author": [{"display": "Dr Gee Pee"}]}},
        {"resource": {"resourceType": "AllergyIntolerance", "code": {"coding": [{"display": "Allergy to penicillin"}]},
                      "recordedDate": "2020-05-01", "reaction": [{"substance": {"coding": [{"display": "Penicillin"}]},
                                                                  "manifestation": [{"text": "Rash"}],
                                                                  "severity": "moderate"}]}},
        {"resource": {"resourceType": "MedicationStatement", "status": "active",
                      "medicationCodeableConcept": {"text": "Amlodipine 5mg tablets"},
                      "effectiveDateTime": "2025-01-01", "dosage": [{"text": "One daily"}],
                      "note": [{"text": "Quantity: 28 tablets"}]}},
        {"resource": {"resourceType": "Condition", "code": {"coding": [{"display": "Hypertension"}]},
                      "recordedDate": "2019-03-04"}}]}
    record = parse_record(bundle)
    assert record.author == "Dr Gee Pee" and record.created.year == 2025
    allergy = record.allergies[0]
    assert (allergy.description, allergy.reaction, allergy.severity, allergy.recorded) == (
        "Allergy to penicillin", "Rash", "moderate", date(2020, 5, 1))
    med = record.medications[0]
    assert (med.kind, med.product, med.dose, med.quantity) == ("repeat", "Amlodipine 5mg tablets", "One daily",
                                                               "28 tablets")
    assert record.additional == (("Problem", "Hypertension", date(2019, 3, 4)),)


def test_privacy_alert():
    alert = parse_alert({"resourceType": "AuditEvent", "id": "A1", "recorded": "2026-01-01T09:30:00+00:00",
                         "type": {"code": "2", "display": "Access Alert"},
                         "subtype": [{"code": "5", "display": "Access made in an emergency"}],
                         "outcomeDesc": "Unconscious", "agent": [
                             {"who": {"identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number",
                                                     "value": "9000000009"}}, "requestor": False},
                             {"who": {"display": "Dr A"}, "role": [{"text": "Clinical"}], "requestor": True}],
                         "extension": [{"url": "x/Extension-SCR-AlertAcknowledgement", "extension": []}]})
    assert (alert.kind, alert.reason_code, alert.reason, alert.nhs_number, alert.user_name, alert.role_name,
            alert.acknowledged) == ("Access Alert", "Access made in an emergency", "Unconscious", "9000000009",
                                    "Dr A", "Clinical", True)


def test_cpis_plan_and_access():
    plan = parse_care_team({
        "resourceType": "CareTeam", "status": "active",
        "category": [{"coding": [{"code": "342191000000101"}]}], "name": "Children's Services",
        "period": {"start": "2025-02-03"}, "managingOrganization": [{"identifier": {"value": "E0901"},
                                                                    "display": "Leeds City Council"}],
        "telecom": [{"extension": [{"valueCode": "office-hours"}], "value": "0113 000 0001"},
                    {"extension": [{"valueCode": "out-of-hours"}], "value": "0113 000 0002"}]})
    assert (plan.plan_type, plan.active, plan.start, plan.end, plan.authority, plan.office_hours,
            plan.out_of_hours) == ("Child Protection Plan", True, date(2025, 2, 3), None, "Leeds City Council",
                                   "0113 000 0001", "0113 000 0002")
    access = parse_access({"recorded": "2026-01-01T10:00:00+00:00", "contained": [{
        "resourceType": "PractitionerRole", "practitioner": {"display": "Dr B"}, "code": [{"text": "Nurse"}],
        "organization": {"display": "A&E"}}]})
    assert (access.user_name, access.role_name, access.organisation) == ("Dr B", "Nurse", "A&E")


def test_flag_withheld_and_full():
    withheld = parse_flag({"resourceType": "Flag", "status": "active", "meta": {"security": [{"code": "REDACTED"}]},
                           "period": {"start": "2024-01-01T00:00:00+00:00"}, "contained": [
                               {"resourceType": "Provenance", "agent": [{"who": {"display": "Dr C"},
                                                                         "onBehalfOf": {"display": "Surgery"}}]}]})
    assert withheld.withheld and withheld.recorded_by == "Dr C" and withheld.impairments == ()
    full = parse_flag({"resourceType": "Flag", "status": "active", "contained": [
        {"resourceType": "Consent", "policyRule": {"coding": [{"display": "Patient"}]}},
        {"resourceType": "Condition", "code": {"coding": [{"display": "Hearing"}]}, "note": [{"text": "Left ear"}]},
        {"resourceType": "Flag", "category": [{}, {"coding": [{"display": "Communication support"}]}],
         "code": {"text": "BSL interpreter"}}]})
    assert not full.withheld and full.impairments == (("Hearing", "Left ear"),)
    assert full.adjustments[0].category == "Communication support" and full.adjustments[0].text == "BSL interpreter"
    assert full.consent == "Patient"
