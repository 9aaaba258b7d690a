"""What a role may do, read from its national RBAC activity codes by the client model (the UI only asks)."""

from __future__ import annotations

from app.client.models import Role


def role(*activities: str) -> Role:
    return Role("urid", "A81001", "Practice", "R8000", "Clinical Practitioner", activities)


def test_a_role_without_activities_may_do_nothing():
    r = role()
    assert not (r.can_search or r.can_edit_demographics or r.can_view_scr or r.can_record_flags
                or r.privacy_officer or r.clinical or r.can_open_scr_in_emergency or r.can_override_scr_legally
                or r.can_record_consent or r.can_view_cpis_notifying or r.can_view_cpis_scheduled)


def test_each_activity_grants_what_it_names():
    assert role("B0264").can_search
    assert role("B0825").can_edit_demographics
    assert role("B0370").can_view_scr and role("B0370").clinical
    assert role("B0360").can_record_flags and role("B0360").clinical
    assert role("B0015").privacy_officer and role("B0016").privacy_officer
    assert not role("B0264", "B0825").clinical
    assert role("B0168").can_open_scr_in_emergency
    assert role("B0020").can_record_consent
    assert role("B0107").can_view_cpis_notifying and role("B0170").can_view_cpis_scheduled


def test_a_legal_override_needs_the_right_to_view_the_scr_too():
    assert not role("B0082").can_override_scr_legally
    assert role("B0082", "B0370").can_override_scr_legally
