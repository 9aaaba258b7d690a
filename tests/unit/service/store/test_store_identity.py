"""Users and role profiles, single-use login challenges (raced by two processes), sessions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.service.store import AlreadyExists, NotFound, RoleProfile
from tests.support.service.fixtures import PROLOGUE, spawn, start_together

NOW = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
FP = "AB:CD:" + "EF" * 30


def gp_role(urid: str = "555254242106", user: str = "u1") -> RoleProfile:
    return RoleProfile(urid, user, "B86001", "Leeds Practice", "S8000:G8000:R8001", "Medical Practitioner",
                       ("B0264", "B0370", "B0825"))


def test_users_and_role_profiles(store):
    user = store.add_user("u1", "Dr Ada Lovelace", card_uuids=["3F2504E0-4F89-11D3-9A0C-0305E82C3301"],
                          cert_fingerprints=[FP])
    assert user.active and user.card_uuids == ("3f2504e0-4f89-11d3-9a0c-0305e82c3301",)
    assert user.cert_fingerprints == (("abcd" + "ef" * 30),)
    assert store.add_role_profile(gp_role()) == gp_role()
    store.add_role_profile(gp_role("555254242107"))
    assert store.get_role_profile("555254242106") == gp_role()
    assert [r.id for r in store.get_user("u1").role_profiles] == ["555254242106", "555254242107"]
    store.remove_role_profile("555254242107")
    assert store.get_role_profile("555254242107") is None
    with pytest.raises(NotFound):
        store.remove_role_profile("555254242107")

    assert store.user_by_card_uuid("3F2504E0-4F89-11D3-9A0C-0305E82C3301").id == "u1"
    assert store.user_by_cert_fingerprint(FP.lower().replace(":", "")).id == "u1"
    assert store.user_by_card_uuid("nope") is None
    store.add_user("u0", "Nurse Mary Seacole")
    store.add_credentials("u0", card_uuids=["c0"])
    assert [u.id for u in store.list_users()] == ["u0", "u1"]
    assert store.user_by_card_uuid("C0").name == "Nurse Mary Seacole"


def test_duplicates_and_unknowns_are_typed_errors(store):
    store.add_user("u1", "A", card_uuids=["c1"], cert_fingerprints=["f1"])
    for call in (lambda: store.add_user("u1", "again"),
                 lambda: store.add_user("u2", "B", card_uuids=["C1"]),
                 lambda: store.add_user("u3", "C", cert_fingerprints=["F1"]),
                 lambda: store.add_role_profile(gp_role()) and store.add_role_profile(gp_role())):
        with pytest.raises(AlreadyExists):
            call()
    assert [u.id for u in store.list_users()] == ["u1"]  # the failed adds left nothing behind
    with pytest.raises(NotFound):
        store.add_role_profile(gp_role(user="ghost"))
    with pytest.raises(NotFound):
        store.deactivate_user("ghost")
    with pytest.raises(NotFound):
        store.add_credentials("ghost", card_uuids=["x"])


def test_deactivation_revokes_sessions(store):
    store.add_user("u1", "A")
    store.create_session("h1", "u1", NOW + timedelta(hours=8), now=NOW)
    user = store.deactivate_user("u1")
    assert not user.active
    assert store.get_session("h1", now=NOW) is None
    assert store.list_users(include_inactive=False) == []
    assert [u.id for u in store.list_users()] == ["u1"]


def test_challenge_is_single_use_and_expires(store):
    store.add_user("u1", "A")
    store.create_challenge("n1", FP, NOW + timedelta(minutes=2), now=NOW)
    got = store.consume_challenge("n1", now=NOW + timedelta(seconds=5))
    assert got is not None and got.cert_fingerprint == "abcd" + "ef" * 30
    assert got.expires_at == NOW + timedelta(minutes=2) and got.created_at == NOW
    assert store.consume_challenge("n1", now=NOW) is None
    store.create_challenge("n2", FP, NOW + timedelta(minutes=2), now=NOW)
    assert store.consume_challenge("n2", now=NOW + timedelta(minutes=3)) is None  # expired
    assert store.consume_challenge("n2", now=NOW) is None  # and gone
    store.create_challenge("n3", FP, NOW + timedelta(minutes=2), now=NOW)  # names no user: any certificate
    with pytest.raises(AlreadyExists):
        store.create_challenge("n3", FP, NOW + timedelta(minutes=2), now=NOW)


RACE = PROLOGUE + """
won = [n for n in sys.argv[3:] if store.consume_challenge(n) is not None]
print(" ".join(won))
"""


def test_two_processes_racing_for_challenges_each_win_is_unique(store, store_url, tmp_path):
    store.add_user("u1", "A")
    nonces = [f"nonce-{i:03d}" for i in range(150)]
    expires = datetime.now(UTC) + timedelta(minutes=5)
    for n in nonces:
        store.create_challenge(n, FP, expires)
    procs = [spawn(RACE, store_url, str(tmp_path / "go"), *nonces) for _ in range(2)]
    start_together(procs, tmp_path / "go")
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    wins = [o[0].split() for o in outs]
    assert sorted(wins[0] + wins[1]) == nonces  # every challenge consumed exactly once
    assert not set(wins[0]) & set(wins[1])


def test_sessions_expire_and_revoke(store):
    store.add_user("u1", "A")
    store.add_user("u2", "B")
    s = store.create_session("h1", "u1", NOW + timedelta(hours=1), now=NOW)
    store.create_session("h2", "u1", NOW + timedelta(hours=1), now=NOW)
    store.create_session("h3", "u2", NOW + timedelta(hours=1), now=NOW)
    assert store.get_session("h1", now=NOW + timedelta(minutes=59)) == s
    assert store.get_session("h1", now=NOW + timedelta(hours=1)) is None  # expired at expires_at
    assert store.revoke_session("h1") is True
    assert store.revoke_session("h1") is False
    assert store.get_session("h1", now=NOW) is None
    assert store.revoke_all_sessions_for_user("u1") == 1
    assert store.get_session("h2", now=NOW) is None
    assert store.get_session("h3", now=NOW) is not None
    with pytest.raises(AlreadyExists):
        store.create_session("h3", "u2", NOW + timedelta(hours=1), now=NOW)


def test_a_session_is_bound_to_one_of_its_users_roles_once(store):
    store.add_user("u1", "A")
    store.add_user("u2", "B")
    store.add_role_profile(gp_role("r1", user="u1"))
    store.add_role_profile(gp_role("r1b", user="u1"))
    store.add_role_profile(gp_role("r2", user="u2"))
    store.create_session("h1", "u1", NOW + timedelta(hours=1), now=NOW)
    assert store.get_session("h1", now=NOW).role_profile_id == ""
    assert store.bind_session_role("h1", "r2", now=NOW) == ""  # another user's role: not bound
    assert store.bind_session_role("h1", "r1", now=NOW) == "r1"
    assert store.bind_session_role("h1", "r1b", now=NOW) == "r1"  # once: the first binding stays
    assert store.bind_session_role("nope", "r1", now=NOW) is None
    assert store.bind_session_role("h1", "r1", now=NOW + timedelta(hours=2)) is None  # expired
    found = store.session_principal("h1", "r1", now=NOW)
    assert found.session_role == "r1" and found.role.id == "r1"
    other = store.session_principal("h1", "r1b", now=NOW)  # the user's own other role: not this session's
    assert other.session_role == "r1" and other.role is None


def test_purge_expired(store):
    store.add_user("u1", "A")
    store.create_session("old", "u1", NOW - timedelta(seconds=1), now=NOW - timedelta(hours=1))
    store.create_session("live", "u1", NOW + timedelta(hours=1), now=NOW)
    store.create_challenge("old", FP, NOW - timedelta(seconds=1), now=NOW - timedelta(minutes=1))
    store.remember("r-old", "u1", "GET", "/x", 200, [], b"", now=NOW - timedelta(days=2))
    store.remember("r-new", "u1", "GET", "/x", 200, [], b"", now=NOW)
    assert store.purge_expired(now=NOW) == 3
    assert store.get_session("live", now=NOW) is not None
    assert store.recall("r-new", "u1") is not None and store.recall("r-old", "u1") is None


def test_users_by_nhs_user_uuid(store):
    user = store.add_user("u1", "Dr Ada Lovelace", nhs_uuids=[" 555000111222 ", "555000111222"])
    assert user.nhs_uuids == ("555000111222",)
    store.add_credentials("u1", nhs_uuids=["555000111333"])  # a second identity linked to the same user
    store.add_credentials("u1", nhs_uuids=["555000111222"])  # already hers: no change, no error
    assert store.get_user("u1").nhs_uuids == ("555000111222", "555000111333")
    assert store.user_by_nhs_uuid("555000111333").id == "u1"
    assert store.user_by_nhs_uuid("555000999999") is None
    assert [u.nhs_uuids for u in store.list_users()] == [("555000111222", "555000111333")]


def test_an_nhs_user_uuid_belongs_to_one_user(store):
    store.add_user("u1", "Dr Ada Lovelace", nhs_uuids=["555000111222"])
    with pytest.raises(AlreadyExists, match="already registered to user 'u1'") as caught:
        store.add_user("u2", "Impostor", nhs_uuids=["555000111222"])
    assert caught.value.owner == "u1"
    assert store.get_user("u2") is None  # nothing half-added
    store.add_user("u3", "Nurse Mary Seacole")
    with pytest.raises(AlreadyExists):
        store.add_credentials("u3", nhs_uuids=["555000111222"])
    assert store.get_user("u3").nhs_uuids == ()


# the last: twelve fullwidth digits, which str.isdigit() accepts
@pytest.mark.parametrize("bad", ["55500011122", "5550001112223", "55500011122x", "", "\uff15" * 12])
def test_malformed_nhs_user_uuids_are_refused_before_anything_is_written(store, bad):
    with pytest.raises(ValueError, match="12 digits"):
        store.add_user("u1", "A", nhs_uuids=[bad])
    assert store.get_user("u1") is None
