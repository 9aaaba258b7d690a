"""Summary Care Record: the SQL both stores share."""

# SQL text here is assembled only from this package's constants; every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from app.service.scr.store import (
    AlertAcknowledged,
    ScrAlert,
    ScrConsentRefused,
    ScrDocument,
    ScrGrant,
    ScrLatestMoved,
    ScrRecord,
    ScrView,
)
from app.service.store.errors import AlreadyExists, NotFound
from app.service.store.rows import Answer, AuditEntry
from app.service.store.sql_effects import EffectsSql

_DOC_COLS = "id, nhs_number, created_at, replaces, author_user, author_org, bundle"
_GRANT_COLS = ("user_id, role_profile_id, nhs_number, kind, granted, reason, alert_id, request_id, granted_at, "
               "expires_at")
_ALERT_COLS = ("id, created_at, user_id, user_name, role_profile_id, role_name, org, nhs_number, alert_type, "
               "alert_subtype, reason, request_id, acknowledged_at, acknowledged_by, acknowledged_role, "
               "acknowledgement_note")
_INSERT_DOC = f"INSERT INTO scr_documents ({_DOC_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
_UPSERT_GRANT = (f"INSERT INTO scr_grants ({_GRANT_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                 "ON CONFLICT (user_id, role_profile_id, nhs_number, kind) DO UPDATE SET granted = excluded.granted, "
                 "reason = excluded.reason, alert_id = excluded.alert_id, request_id = excluded.request_id, "
                 "granted_at = excluded.granted_at, expires_at = excluded.expires_at")


class ScrSql(EffectsSql):
    # --- codecs ---------------------------------------------------------------------------------------------

    def _scr_doc(self, t: Sequence[Any]) -> ScrDocument:
        return ScrDocument(id=t[0], nhs_number=t[1], created_at=self._dec_ts(t[2]), replaces=t[3],
                           author_user=t[4], author_org=t[5], bundle=self._dec_json(t[6]))

    def _scr_doc_params(self, d: ScrDocument) -> tuple[Any, ...]:
        return (d.id, d.nhs_number, self._enc_ts(d.created_at), d.replaces, d.author_user, d.author_org,
                self._enc_json(d.bundle))

    def _scr_grant(self, t: Sequence[Any]) -> ScrGrant:
        return ScrGrant(user_id=t[0], role_profile_id=t[1], nhs_number=t[2], kind=t[3], granted=bool(t[4]),
                        reason=t[5], alert_id=t[6], request_id=t[7], granted_at=self._dec_ts(t[8]),
                        expires_at=self._dec_ts(t[9]))

    def _scr_alert(self, t: Sequence[Any]) -> ScrAlert:
        return ScrAlert(id=t[0], created_at=self._dec_ts(t[1]), user_id=t[2], user_name=t[3], role_profile_id=t[4],
                        role_name=t[5], org=t[6], nhs_number=t[7], alert_type=int(t[8]), alert_subtype=int(t[9]),
                        reason=t[10], request_id=t[11],
                        acknowledged_at=self._dec_ts(t[12]) if t[12] is not None else None,
                        acknowledged_by=t[13], acknowledged_role=t[14], acknowledgement_note=t[15])

    # --- documents and consent ------------------------------------------------------------------------------

    def scr_record(self, nhs_number: str) -> ScrRecord | None:
        with self._read() as cur:
            cur.execute("SELECT p.consent, d.id, d.nhs_number, d.created_at, d.replaces, d.author_user, "
                        "d.author_org, d.bundle FROM scr_patients p LEFT JOIN scr_documents d ON d.id = p.latest_id "
                        "WHERE p.nhs_number = ?", (nhs_number,))
            row = cur.fetchone()
        if row is None:
            return None
        return ScrRecord(nhs_number, row[0], self._scr_doc(row[1:]) if row[1] is not None else None)

    def scr_view(self, nhs_number: str) -> ScrView | None:
        if self._for_update:  # PostgreSQL (jsonb)
            entries = "(d.bundle -> 'entry')::text, jsonb_array_length(d.bundle -> 'entry')"
        else:
            entries = "json_extract(d.bundle, '$.entry'), json_array_length(d.bundle, '$.entry')"
        with self._read() as cur:
            cur.execute(f"SELECT p.consent, p.latest_id, {entries} FROM scr_patients p "
                        "LEFT JOIN scr_documents d ON d.id = p.latest_id WHERE p.nhs_number = ?", (nhs_number,))
            row = cur.fetchone()
        if row is None:
            return None
        return ScrView(row[0], row[1], row[2], int(row[3] or 0))

    def put_scr_document(self, doc: ScrDocument, *, expected_latest: str | None,
                         audit: Sequence[AuditEntry] = (), answer: Answer | None = None) -> None:
        encoded = self._encode_audit(audit)
        with self._write() as cur:
            cur.execute("INSERT INTO scr_patients (nhs_number, consent, latest_id, updated_at, updated_by) "
                        "VALUES (?, 'Ask', NULL, ?, ?) ON CONFLICT (nhs_number) DO NOTHING",
                        (doc.nhs_number, self._enc_ts(doc.created_at), doc.author_user))
            cur.execute("SELECT consent, latest_id FROM scr_patients WHERE nhs_number = ?" + self._for_update,
                        (doc.nhs_number,))
            consent, latest = cur.fetchone()
            if consent == "No":
                raise ScrConsentRefused(doc.nhs_number)
            if latest != expected_latest:
                raise ScrLatestMoved(latest)
            cur.execute("SELECT 1 FROM scr_documents WHERE id = ?", (doc.id,))
            if cur.fetchone():
                raise AlreadyExists("SCR", doc.id)
            cur.execute(_INSERT_DOC, self._scr_doc_params(doc))
            cur.execute("UPDATE scr_patients SET latest_id = ?, updated_at = ?, updated_by = ? WHERE nhs_number = ?",
                        (doc.id, self._enc_ts(doc.created_at), doc.author_user, doc.nhs_number))
            self.commit_effects(cur, encoded, answer)

    def set_scr_consent(self, nhs_number: str, consent: str, *, by: str, now: datetime,
                        audit: Sequence[AuditEntry] = (), answer: Answer | None = None) -> None:
        if consent not in ("Yes", "No", "Ask"):
            raise ValueError(f"consent must be Yes, No or Ask, not {consent!r}")
        encoded = self._encode_audit(audit)
        with self._write() as cur:
            cur.execute("INSERT INTO scr_patients (nhs_number, consent, latest_id, updated_at, updated_by) "
                        "VALUES (?, ?, NULL, ?, ?) ON CONFLICT (nhs_number) DO UPDATE SET consent = excluded.consent, "
                        "updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                        (nhs_number, consent, self._enc_ts(now), by))
            self.commit_effects(cur, encoded, answer)

    # --- episodes: permission to view, self-claimed relationships, overrides -------------------------------

    def scr_grants(self, user_id: str, role_profile_id: str, nhs_number: str, *, now: datetime
                   ) -> list[ScrGrant]:
        with self._read() as cur:
            cur.execute(f"SELECT {_GRANT_COLS} FROM scr_grants WHERE user_id = ? AND role_profile_id = ? "
                        "AND nhs_number = ? AND expires_at > ? ORDER BY kind",
                        (user_id, role_profile_id, nhs_number, self._enc_ts(now)))
            return [self._scr_grant(r) for r in cur.fetchall()]

    def put_scr_grants(self, grants: Sequence[ScrGrant], *, alert: ScrAlert | None = None,
                       refuse_opted_out: str | None = None,
                       audit: Sequence[AuditEntry] = (), answer: Answer | None = None) -> ScrAlert | None:
        encoded = self._encode_audit(audit)
        stored: ScrAlert | None = None
        with self._write() as cur:
            if refuse_opted_out is not None:
                cur.execute("SELECT consent FROM scr_patients WHERE nhs_number = ?" + self._for_update,
                            (refuse_opted_out,))
                row = cur.fetchone()
                if row is not None and row[0] == "No":
                    raise ScrConsentRefused(refuse_opted_out)
            if alert is not None:
                a = alert
                cur.execute(f"INSERT INTO scr_alerts ({_ALERT_COLS}) VALUES "
                            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, NULL) "
                            "ON CONFLICT (request_id, user_id) DO NOTHING",
                            (a.id, self._enc_ts(a.created_at), a.user_id, a.user_name, a.role_profile_id, a.role_name,
                             a.org, a.nhs_number, a.alert_type, a.alert_subtype, a.reason, a.request_id))
                cur.execute(f"SELECT {_ALERT_COLS} FROM scr_alerts WHERE request_id = ? AND user_id = ?",
                            (a.request_id, a.user_id))
                stored = self._scr_alert(cur.fetchone())
            if grants:
                cur.executemany(_UPSERT_GRANT, [
                    (g.user_id, g.role_profile_id, g.nhs_number, g.kind, bool(g.granted), g.reason,
                     stored.id if stored is not None else g.alert_id, g.request_id, self._enc_ts(g.granted_at),
                     self._enc_ts(g.expires_at)) for g in grants])
            self.commit_effects(cur, encoded, answer)
        return stored

    # --- the privacy officers' queue ------------------------------------------------------------------------

    def scr_alerts(self, *, org: str, types: Sequence[int], acknowledged: bool | None = None,
                   limit: int = 100) -> list[ScrAlert]:
        if not types or limit <= 0:
            return []
        where = [f"org = ? AND alert_type IN ({', '.join('?' for _ in types)})"]
        if acknowledged is not None:
            where.append("acknowledged_at IS NOT NULL" if acknowledged else "acknowledged_at IS NULL")
        with self._read() as cur:
            cur.execute(f"SELECT {_ALERT_COLS} FROM scr_alerts WHERE {' AND '.join(where)} "
                        "ORDER BY created_at DESC, id LIMIT ?", (org, *(int(t) for t in types), limit))
            return [self._scr_alert(r) for r in cur.fetchall()]

    def get_scr_alert(self, alert_id: str) -> ScrAlert | None:
        with self._read() as cur:
            cur.execute(f"SELECT {_ALERT_COLS} FROM scr_alerts WHERE id = ?", (alert_id,))
            row = cur.fetchone()
        return self._scr_alert(row) if row else None

    def acknowledge_scr_alert(self, alert_id: str, *, by: str, role: str, note: str | None, now: datetime,
                              audit: Sequence[AuditEntry] = (), answer: Answer | None = None) -> ScrAlert:
        encoded = self._encode_audit(audit)
        with self._write() as cur:
            cur.execute(f"SELECT {_ALERT_COLS} FROM scr_alerts WHERE id = ?" + self._for_update, (alert_id,))
            row = cur.fetchone()
            if row is None:
                raise NotFound("SCR alert", alert_id)
            alert = self._scr_alert(row)
            if alert.acknowledged_at is not None:
                raise AlertAcknowledged(alert)
            cur.execute("UPDATE scr_alerts SET acknowledged_at = ?, acknowledged_by = ?, acknowledged_role = ?, "
                        "acknowledgement_note = ? WHERE id = ?", (self._enc_ts(now), by, role, note, alert_id))
            self.commit_effects(cur, encoded, answer)
        return replace(alert, acknowledged_at=now, acknowledged_by=by, acknowledged_role=role,
                       acknowledgement_note=note)

    # --- seeding --------------------------------------------------------------------------------------------

    def put_scr_seed(self, consents: Sequence[tuple[str, str]], docs: Sequence[ScrDocument], *,
                     now: datetime) -> int:
        latest = {d.nhs_number: d.id for d in docs}
        heads = {nhs: consent for nhs, consent in consents}
        for nhs in latest:
            heads.setdefault(nhs, "Ask")
        with self._write() as cur:
            if docs:
                cur.executemany(_INSERT_DOC + " ON CONFLICT (id) DO NOTHING", [self._scr_doc_params(d) for d in docs])
            if heads:
                stamp = self._enc_ts(now)
                cur.executemany("INSERT INTO scr_patients (nhs_number, consent, latest_id, updated_at, updated_by) "
                                "VALUES (?, ?, ?, ?, 'seed') ON CONFLICT (nhs_number) DO NOTHING",
                                [(nhs, consent, latest.get(nhs), stamp) for nhs, consent in heads.items()])
        return len(docs)
