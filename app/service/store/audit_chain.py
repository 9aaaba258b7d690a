"""The audit hash chain: canonical encoding, chaining and verification. Pure: no database here.

``hash = SHA-256(canonical(record fields, seq, prev_hash))`` where canonical is compact JSON with sorted keys,
UTF-8, and ``at`` written as UTC with microseconds (``2024-05-01T09:30:00.000000Z``). ``seq`` is inside the
hash, so moving a record to another position breaks it; ``prev_hash`` links each record to the one before, so
a deletion or reordering breaks the next link; the chain head (last seq and hash, kept in the same transaction)
catches deletion of the newest records. The genesis ``prev_hash`` is 64 zeros.

With an audit key (``audit_seal.AuditKey``) the hash is ``HMAC-SHA256(key, canonical(…))``, stored as
``hmac-sha256:<key id>:<hex>``: without the key nobody can compute it, so a record cannot be rewritten and the
rest re-hashed. Unkeyed records written before the key existed still verify with SHA-256, but no unkeyed record
may follow a keyed one. Published checkpoints (``audit_seal.Checkpoint``) are checked against the records: a
checkpoint beyond the chain head means the newest records were removed and the head rewound.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from .audit_seal import KEYED_PREFIX, AuditKey, Checkpoint
from .base import AuditEntry, AuditVerification
from .rows import AuditRecord

GENESIS = "0" * 64


def format_at(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_details(details: dict[str, Any]) -> str:
    return json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


# the record's text columns, by field name (``details`` is JSON text: its NULs are escaped by the encoding)
TEXT_FIELDS = ("user_id", "role_profile_id", "org", "action", "nhs_number", "request_id", "outcome")


def _storable(value: str) -> bool:
    """No NUL (PostgreSQL's text refuses it) and valid UTF-8 (no lone surrogate): what every store can keep."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def encode_entry(entry: AuditEntry) -> str:
    """``canonical_details(entry.details)``, after checking that every value of the record can be stored and hashed
    by every store; ``ValueError`` naming the field otherwise. Called before a record joins a batch or takes a lock,
    so that one unstorable record fails its own caller only."""
    for name in TEXT_FIELDS:
        value = getattr(entry, name)
        if value is not None and (not isinstance(value, str) or not _storable(value)):
            raise ValueError(f"the audit record's {name} cannot be stored (a NUL character, an unpaired "
                             f"surrogate or not text): {safe_text(value)!r}")
    details = canonical_details(entry.details)
    if not _storable(details):
        raise ValueError(f"the audit record's details cannot be stored (an unpaired surrogate): {safe_text(details)}")
    return details


def safe_text(value: object, limit: int = 64) -> str:
    """A representation of an untrusted value that every store can keep and a reader can see through: control
    characters, unpaired surrogates and backslashes escaped as in Python (``\\x00``, ``\\udc80``), then cut to
    ``limit`` characters (ending in ``…`` when cut). Printable text comes back unchanged."""
    text = value if isinstance(value, str) else repr(value)
    out = []
    for ch in text:
        code = ord(ch)
        if ch == "\\" or code < 0x20 or code == 0x7F or 0xD800 <= code <= 0xDFFF:
            out.append("\\\\" if ch == "\\" else f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    escaped = "".join(out)
    return escaped if len(escaped) <= limit else escaped[:limit - 1] + "…"


def encode_record(*, seq: int, at: datetime, user_id: str, role_profile_id: str, org: str, action: str,
                  nhs_number: str | None, request_id: str, outcome: str, details: dict[str, Any],
                  prev_hash: str) -> bytes:
    """The canonical bytes a record's hash covers."""
    doc = {
        "seq": seq, "at": format_at(at), "user_id": user_id, "role_profile_id": role_profile_id, "org": org,
        "action": action, "nhs_number": nhs_number, "request_id": request_id, "outcome": outcome,
        "details": details, "prev_hash": prev_hash,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def compute_hash(*, seq: int, at: datetime, user_id: str, role_profile_id: str, org: str, action: str,
                 nhs_number: str | None, request_id: str, outcome: str, details: dict[str, Any],
                 prev_hash: str, key: AuditKey | None = None) -> str:
    """``details`` as decoded from its canonical JSON (so that keys are strings, as when verifying). With ``key``
    the keyed form (``hmac-sha256:<key id>:<hex>``), else the unkeyed SHA-256 hex of older chains."""
    data = encode_record(seq=seq, at=at, user_id=user_id, role_profile_id=role_profile_id, org=org, action=action,
                         nhs_number=nhs_number, request_id=request_id, outcome=outcome, details=details,
                         prev_hash=prev_hash)
    return key.seal(data) if key is not None else hashlib.sha256(data).hexdigest()


def is_keyed(stored_hash: str) -> bool:
    return stored_hash.startswith(KEYED_PREFIX)


def key_id_of(stored_hash: str) -> str:
    """The key id in a keyed record's stored hash ("" for an unkeyed one)."""
    return stored_hash[len(KEYED_PREFIX):].split(":", 1)[0] if is_keyed(stored_hash) else ""


def chain(entries: Sequence[tuple[AuditEntry, str]], last_seq: int, last_hash: str, now: datetime,
          key: AuditKey | None = None) -> list[tuple[AuditRecord, str]]:
    """Give each ``(entry, canonical_details(entry.details))`` the next seq and link it (keyed with ``key``);
    returns each record with its details JSON. Called with the chain head locked, inside the transaction that
    inserts the records and moves the head."""
    out: list[tuple[AuditRecord, str]] = []
    seq, prev = last_seq, last_hash
    for e, details_json in entries:
        seq += 1
        at = (e.at or now).astimezone(UTC)
        details = json.loads(details_json)
        h = compute_hash(seq=seq, at=at, user_id=e.user_id, role_profile_id=e.role_profile_id, org=e.org,
                         action=e.action, nhs_number=e.nhs_number, request_id=e.request_id, outcome=e.outcome,
                         details=details, prev_hash=prev, key=key)
        record = AuditRecord(seq=seq, at=at, user_id=e.user_id, role_profile_id=e.role_profile_id, org=e.org,
                             action=e.action, nhs_number=e.nhs_number, request_id=e.request_id,
                             outcome=e.outcome, prev_hash=prev, hash=h, details=details)
        out.append((record, details_json))
        prev = h
    return out


def verify(rows: Iterable[tuple[int, datetime | str, str, str, str, str, str | None, str, str, str, str, str]],
           head_seq: int, head_hash: str, *, key: AuditKey | None = None,
           checkpoints: Sequence[Checkpoint] = ()) -> AuditVerification:
    """Check rows ``(seq, at, user_id, role_profile_id, org, action, nhs_number, request_id, outcome,
    details_json, prev_hash, hash)`` in seq order against each other, against the chain head and against the
    published ``checkpoints`` (read BEFORE the head, so that none names a record committed after it).

    ``at`` may be a datetime or its stored ISO text (SQLite). Keyed records need ``key``; without it (or with
    another key) the result says ``needs_key``."""
    published: dict[int, list[Checkpoint]] = {}
    for cp in checkpoints:
        published.setdefault(cp.seq, []).append(cp)
    matched: Checkpoint | None = None

    def result(ok: bool, checked: int, bad: int | None, reason: str, *, needs_key: bool = False
               ) -> AuditVerification:
        where = (matched.seq, matched.at, matched.host) if matched is not None else None
        return AuditVerification(ok, checked, bad, reason, where, needs_key)

    expected_seq, prev, checked, keyed_seen = 1, GENESIS, 0, False
    for (seq, at, user_id, role, org, action, nhs, request_id, outcome, details_json, prev_hash, stored) in rows:
        if seq > head_seq:
            break
        if seq != expected_seq:
            if seq > expected_seq:
                missing = f"{expected_seq}" if seq == expected_seq + 1 else f"{expected_seq}-{seq - 1}"
                return result(False, checked, expected_seq, f"record {missing} missing (next is {seq})")
            return result(False, checked, seq, f"record {seq} out of order (expected {expected_seq})")
        if prev_hash != prev:
            return result(False, checked, seq, f"record {seq} does not link to record {seq - 1} (prev_hash differs)")
        keyed = is_keyed(stored)
        if keyed and key is None:
            return result(False, checked, seq, f"record {seq} is keyed (key {key_id_of(stored)}) and no audit key "
                          "was given, so it cannot be checked", needs_key=True)
        if keyed and key is not None and not stored.startswith(key.prefix):
            return result(False, checked, seq, f"record {seq} was keyed with key {key_id_of(stored)}, not with "
                          f"the key given ({key.key_id})", needs_key=True)
        if keyed_seen and not keyed:
            return result(False, checked, seq, f"record {seq} is not keyed but follows keyed records (rewritten "
                          "without the key)")
        try:
            when = datetime.fromisoformat(at) if isinstance(at, str) else at
            actual = compute_hash(seq=seq, at=when, user_id=user_id, role_profile_id=role, org=org, action=action,
                                  nhs_number=nhs, request_id=request_id, outcome=outcome,
                                  details=json.loads(details_json), prev_hash=prev_hash,
                                  key=key if keyed else None)
        except (ValueError, TypeError) as exc:
            return result(False, checked, seq, f"record {seq} cannot be decoded ({exc})")
        if actual != stored:
            return result(False, checked, seq, f"record {seq} was altered (hash differs)")
        for cp in published.get(seq, ()):
            if cp.hash != stored:
                return result(False, checked, seq, f"record {seq} differs from the checkpoint published for it "
                              f"at {cp.at} by {cp.host} ({cp.where}): it was rewritten")
            matched = cp
        keyed_seen = keyed_seen or keyed
        checked += 1
        prev = stored
        expected_seq += 1
    if expected_seq - 1 != head_seq:
        return result(False, checked, expected_seq,
                      f"records {expected_seq}-{head_seq} missing (the chain head is at {head_seq})")
    if prev != head_hash:
        return result(False, checked, head_seq, f"record {head_seq} differs from the chain head")
    beyond = max((s for s in published if s > head_seq), default=None)
    if beyond is not None:
        cp = published[beyond][0]
        gone = f"{head_seq + 1}" if beyond == head_seq + 1 else f"{head_seq + 1}-{beyond}"
        return result(False, checked, head_seq + 1,
                      f"records {gone} missing: checkpoint {beyond} was published at {cp.at} by {cp.host} "
                      f"({cp.where}) but the chain ends at record {head_seq} (head rewound)")
    return result(True, checked, None, f"{checked} records verified")
