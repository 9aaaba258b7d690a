"""``spinedesk service`` and its administration subcommands: seed, users, audit, reload-crl."""

from __future__ import annotations

import gc
import sys
import uuid as uuidlib
from datetime import datetime
from pathlib import Path
from typing import TextIO

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from app.errors import AppError, user_text
from app.pki.live_trust import LiveTrust
from app.service.domain.rbac import RoleTable
from app.service.seed import cpis as seed_cpis
from app.service.seed import flags as seed_flags
from app.service.seed import scr as seed_scr
from app.service.seed.patients import generate_patients
from app.service.store import RoleProfile, Store


def seed(store: Store, patients: int, seed_value: int, stream: TextIO) -> int:
    """Seed ``patients`` synthetic patients (plus NHS's sandbox reference patients) with their clinical content.

    Progress goes to stderr as one line rewritten in place (``\\r``); that line is always ended with a newline
    before anything else is printed, even when seeding fails part-way, so no later message runs into it.
    """
    generated = 0  # rows handed to the store: the synthetic patients plus the reference patients
    progress_shown = False
    started = datetime.now()
    # The rows are acyclic (reference counting frees them); left on, the cyclic collector walks every live
    # object of a 50,000-row chunk again and again while the chunk is encoded and inserted (a third of the time).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for chunk in generate_patients(patients, seed=seed_value, chunk_size=50_000):
            store.put_patients(chunk, analyze=False)
            generated += len(chunk)
            for clinical in (seed_scr, seed_cpis, seed_flags):  # SCR content, CP-IS plans, flags for some of them
                clinical.seed_rows(store, chunk, seed_value)
            print(f"\r  {generated:,} patients", end="", file=sys.stderr, flush=True)
            progress_shown = True
        store.analyze()  # once, not after every chunk
    finally:
        if progress_shown:
            print(file=sys.stderr, flush=True)  # end the progress line
        if gc_was_enabled:
            gc.enable()
    seconds = (datetime.now() - started).total_seconds()
    reference = generated - patients  # generate_patients yields exactly ``patients`` synthetic rows
    print(f"Seeded {patients:,} synthetic + {reference:,} NHS reference patients (seed {seed_value}) in "
          f"{seconds:.1f} s.", file=stream, flush=True)
    return 0


def _card_identity(card_file: Path | None, cert_file: Path | None, card_uuid: str | None) -> tuple[list, list]:
    uuids, fingerprints = [], []
    if card_uuid:
        uuids.append(str(uuidlib.UUID(card_uuid)))
    if card_file:
        from app.card.virtual import CardFile  # training cards only; imported where used

        uuids.append(str(CardFile.load(card_file).card_uuid))
    if cert_file:
        data = cert_file.read_bytes()
        cert = x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)
        fingerprints.append(cert.fingerprint(hashes.SHA256()).hex())
    if not uuids and not fingerprints:
        raise AppError("name the user's card with --card-uuid, --card-file or --cert")
    return uuids, fingerprints


def users_add(store: Store, user_id: str, name: str, *, card_file: Path | None, cert_file: Path | None,
              card_uuid: str | None, stream: TextIO) -> int:
    uuids, fingerprints = _card_identity(card_file, cert_file, card_uuid)
    existing = store.get_user(user_id)
    if existing is None:
        store.add_user(user_id, name, card_uuids=uuids, cert_fingerprints=fingerprints)
        print(f"Added user {user_id} ({name}).", file=stream)
    else:
        store.add_credentials(user_id, card_uuids=uuids, cert_fingerprints=fingerprints)
        print(f"Linked another card to user {user_id}.", file=stream)
    return 0


def users_add_role(store: Store, roles: RoleTable, *, user_id: str, urid: str | None, org: str, org_name: str,
                   role_code: str, activities: list[str] | None, stream: TextIO) -> int:
    try:
        acts = tuple(activities) if activities else roles.default_activities(role_code)
    except ValueError as exc:
        raise AppError(str(exc)) from exc
    unknown = [a for a in acts if a not in roles.activities]
    if unknown:
        raise AppError(f"unknown activity codes {unknown}; known: {', '.join(sorted(roles.activities))}")
    profile = RoleProfile(urid or uuidlib.uuid4().hex[:12], user_id, org, org_name, role_code,
                          roles.role_name(role_code), acts)
    store.add_role_profile(profile)
    print(f"Role profile {profile.id}: {profile.role_name} at {org_name} ({org}), activities {', '.join(acts)}.",
          file=stream)
    return 0


def users_list(store: Store, stream: TextIO) -> int:
    for user in store.list_users():
        state = "" if user.active else "  [inactive]"
        print(f"{user.id}  {user.name}{state}  cards: {', '.join(user.card_uuids) or '-'}", file=stream)
        for role in user.role_profiles:
            print(f"    {role.id}  {role.role_code} {role.role_name} at {role.org_name} ({role.org_ods})  "
                  f"{' '.join(role.activity_codes)}", file=stream)
    return 0


def audit_verify(store: Store, stream: TextIO) -> int:
    result = store.verify_audit()
    if result.ok:
        print(f"Audit chain intact: {result.checked:,} records verified.", file=stream)
        return 0
    print(f"AUDIT CHAIN BROKEN at record {result.first_bad_seq}: {result.reason}. "
          f"({result.checked:,} records checked.) Preserve the database and report this to your privacy officer.",
          file=stream)
    return 3


def reload_crl(store: Store, trust: LiveTrust, stream: TextIO) -> int:
    """Read the CRLs as the service would, end the sessions of certificates they revoke, and say what was read.
    Exit 1 when revocation information is out of date (nobody can log in until a fresh CRL is published)."""
    from app.service.domain.auth import AuthService

    result = AuthService(store, trust, audience="").reload_revocation()  # no logins: CRLs only
    for f in trust.crl_files:
        crl = f.crl
        number = _crl_number(crl)
        issuer = crl.issuer.rfc4514_string()
        print(f"CRL file {f.path}: from {issuer}{f', number {number}' if number is not None else ''}, issued "
              f"{crl.last_update_utc:%Y-%m-%d %H:%M} UTC, next update "
              f"{f'{crl.next_update_utc:%Y-%m-%d %H:%M} UTC' if crl.next_update_utc else 'none'}, "
              f"{len(crl)} revoked certificate(s).", file=stream)
    if not trust.crl_files:
        print("No CRL files are configured.", file=stream)
    for problem in result.errors:
        print(f"Problem: {problem}.", file=stream)
    print(f"Ended {result.ended} session(s) opened with a certificate that is now revoked.", file=stream)
    print("Running service processes re-read a changed CRL file at their next request; send the service SIGHUP to "
          "make them re-read now.", file=stream)
    for stale in result.stale:
        print(user_text(stale), file=stream)
    return 1 if result.stale else 0


def _crl_number(crl: x509.CertificateRevocationList) -> int | None:
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return None
