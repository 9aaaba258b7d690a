"""A restricted patient's withheld values and their removal from other services' answers (pure, no I/O)."""

from __future__ import annotations

import copy
import json

from app.service.core.patient import security_label
from app.service.core.withheld import NOTHING, WITHHELD, redact, withheld_of

ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
PHARMACY = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NominatedPharmacy"


def patient(code: str = "R") -> dict:
    return {
        "resourceType": "Patient", "id": "9000000025", "meta": {"security": [security_label(code)]},
        "name": [{"use": "usual", "family": "Smythe", "given": ["Janet"]}],
        "address": [{"use": "home", "line": ["1 Trevelyan Square", "Boar Lane"], "postalCode": "LS1 6AE"}],
        "telecom": [{"system": "phone", "value": "01632960587"}, {"system": "email", "value": "j@example.com"}],
        "contact": [{"telecom": [{"system": "phone", "value": "01632960111"}]}],
        "generalPractitioner": [{"type": "Organization", "identifier": {"system": ODS, "value": "H87487"}}],
        "extension": [{"url": PHARMACY, "valueReference": {"identifier": {"system": ODS, "value": "FX123"}}}],
    }


def test_only_restricted_and_very_restricted_patients_withhold_anything():
    assert withheld_of(patient("U")) is NOTHING and withheld_of(None) is NOTHING and not NOTHING
    for code in ("R", "V"):
        hidden = withheld_of(patient(code))
        assert hidden.values == {"1 Trevelyan Square", "Boar Lane", "LS1 6AE", "LS16AE", "01632960587",
                                 "j@example.com", "01632960111", "H87487", "FX123"}
        assert hidden.codes == {"H87487", "FX123"}


def test_an_organisation_named_by_a_withheld_code_loses_its_name_and_the_code():
    hidden = withheld_of(patient())
    answer = {"entry": [
        {"resource": {"resourceType": "Organization", "id": "O1", "identifier": [{"system": ODS, "value": "H87487"}],
                      "name": "The Beeches Medical Practice", "telecom": [{"value": "01632000000"}]}},
        {"resource": {"resourceType": "Organization", "id": "O2", "identifier": [{"system": ODS, "value": "RXX01"}],
                      "name": "Training Hospital"}},
        {"resource": {"resourceType": "Provenance", "agent": [{"onBehalfOf": {
            "identifier": {"system": ODS, "value": "H87487"}, "display": "The Beeches Medical Practice"}}]}},
        {"accessedBy": {"organisationCode": "H87487", "organisationName": "The Beeches Medical Practice",
                        "userName": "Dr A"}},
    ]}
    out = redact(answer, hidden)
    text = json.dumps(out)
    assert "H87487" not in text and "Beeches" not in text and "01632000000" not in text
    assert out["entry"][0]["resource"] == {"resourceType": "Organization", "id": "O1",
                                           "identifier": [{"system": ODS, "value": WITHHELD}]}
    assert out["entry"][1] == answer["entry"][1]  # another organisation is not withheld
    assert out["entry"][3]["accessedBy"] == {"organisationCode": WITHHELD, "userName": "Dr A"}


def test_values_go_wherever_they_stand_as_words_and_ids_stay_intact():
    hidden = withheld_of(patient())
    answer = {"div": "<p>Training Practice H87487 (H87487), LS1 6AE</p>", "id": "0C2AFH87487B",
              "ref": "Organization/7H874872", "org": "H87487"}
    assert redact(answer, hidden) == {"div": f"<p>Training Practice {WITHHELD} ({WITHHELD}), {WITHHELD}</p>",
                                      "id": "0C2AFH87487B", "ref": "Organization/7H874872", "org": WITHHELD}


def test_people_inside_an_answer_lose_what_pds_withholds():
    hidden = withheld_of(patient())
    bundle = {"entry": [{"resource": patient()}, {"resource": {
        "resourceType": "RelatedPerson", "name": [{"family": "Kin"}], "address": [{"line": ["9 Elsewhere Road"]}],
        "telecom": [{"value": "01632960999"}]}}]}
    before = copy.deepcopy(bundle)
    out = redact(bundle, hidden)
    assert bundle == before  # the input is not changed
    person, relative = (e["resource"] for e in out["entry"])
    assert not {"address", "telecom", "contact", "generalPractitioner"} & set(person)
    assert "extension" not in person and person["name"] == patient()["name"]
    assert relative == {"resourceType": "RelatedPerson", "name": [{"family": "Kin"}]}


def test_nothing_to_withhold_returns_the_answer_itself():
    answer = {"org": "H87487"}
    assert redact(answer, NOTHING) is answer
