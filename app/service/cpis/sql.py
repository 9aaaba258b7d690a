"""CP-IS: the SQL both stores share."""

# SQL text here is assembled only from this package's constants; every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from app.service.cpis.store import (
    AccessEvent,
    AccessWrite,
    CpisPlan,
    InboxItem,
    LocalAuthority,
    Notification,
    OutboxItem,
    StuckNotifications,
)
from app.service.store.rows import Answer, AuditEntry
from app.service.store.sql_effects import EffectsSql
from app.service.store.sqlbase import chunks, dumps, utcnow

_LA_COLS = "code, name, team, office_hours, out_of_hours, webhook_url, secret"
_PLAN_COLS = "id, nhs_number, plan_type, la_code, start_date, end_date"
_EVENT_COLS = ("id, nhs_number, at, user_id, user_name, role_profile_id, role_code, role_name, org_ods, org_name, "
               "request_id")
_OUTBOX_COLS = ("id, access_id, la_code, nhs_number, payload, created_at, attempts, next_attempt_at, claim_token, "
                "delivered_at, last_error")
_DUE = "delivered_at IS NULL AND next_attempt_at <= ?"


class CpisSql(EffectsSql):
    # --- reference data and plans ---------------------------------------------------------------------------

    def put_local_authorities(self, items: Iterable[LocalAuthority]) -> int:
        given = list(items)
        # a new authority without a secret gets a random one; an existing one keeps its own unless one is given
        rows = [(a.code, a.name, a.team, a.office_hours, a.out_of_hours, a.webhook_url,
                 a.secret or secrets.token_hex(32), a.secret) for a in given]
        with self._write() as cur:
            cur.executemany(
                f"INSERT INTO cpis_local_authorities ({_LA_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (code) DO UPDATE SET name = excluded.name, team = excluded.team, "
                "office_hours = excluded.office_hours, out_of_hours = excluded.out_of_hours, "
                "webhook_url = excluded.webhook_url, secret = CASE WHEN CAST(? AS TEXT) = '' "
                "THEN cpis_local_authorities.secret ELSE excluded.secret END", rows)
        return len(rows)

    @staticmethod
    def _la(t: Sequence[Any]) -> LocalAuthority:
        return LocalAuthority(code=t[0], name=t[1], team=t[2], office_hours=t[3], out_of_hours=t[4],
                              webhook_url=t[5], secret=t[6])

    def local_authority(self, code: str) -> LocalAuthority | None:
        with self._read() as cur:
            cur.execute(f"SELECT {_LA_COLS} FROM cpis_local_authorities WHERE code = ?", (code,))
            row = cur.fetchone()
        return self._la(row) if row else None

    def put_cpis_plans(self, plans: Iterable[CpisPlan]) -> int:
        done = 0
        for batch in chunks(plans, 5000):
            params = [(p.id, p.nhs_number, p.plan_type, p.la_code, self._enc_date(p.start_date),
                       self._enc_date(p.end_date)) for p in batch]
            with self._write() as cur:
                cur.executemany(f"INSERT INTO cpis_plans ({_PLAN_COLS}) VALUES (?, ?, ?, ?, ?, ?) "
                                "ON CONFLICT (id) DO UPDATE SET nhs_number = excluded.nhs_number, "
                                "plan_type = excluded.plan_type, la_code = excluded.la_code, "
                                "start_date = excluded.start_date, end_date = excluded.end_date", params)
            done += len(batch)
        return done

    def cpis_plans(self, nhs_number: str, *, ended_on_or_after: date) -> list[tuple[CpisPlan, LocalAuthority]]:
        cols = ", ".join(f"p.{c.strip()}" for c in _PLAN_COLS.split(",")) + ", " + ", ".join(
            f"a.{c.strip()}" for c in _LA_COLS.split(","))
        with self._read() as cur:
            cur.execute(f"SELECT {cols} FROM cpis_plans p JOIN cpis_local_authorities a ON a.code = p.la_code "
                        "WHERE p.nhs_number = ? AND (p.end_date IS NULL OR p.end_date >= ?) "
                        "ORDER BY p.start_date DESC, p.id", (nhs_number, self._enc_date(ended_on_or_after)))
            rows = cur.fetchall()
        return [(CpisPlan(id=t[0], nhs_number=t[1], plan_type=t[2], la_code=t[3], start_date=self._dec_date(t[4]),
                          end_date=self._dec_date(t[5])), self._la(t[6:])) for t in rows]

    # --- access events and the outbox -----------------------------------------------------------------------

    def record_cpis_accesses(self, items: Sequence[AccessWrite], *, now: datetime | None = None) -> list[bool]:
        now = now or utcnow()
        encoded = self._encode_audit([e for item in items for e in item.audit])  # fails before any lock
        answers = [item.answer for item in items if item.answer is not None]
        if len(answers) > 1:
            raise ValueError("at most one idempotent answer per transaction")
        created = []
        with self._write() as cur:
            for item in items:
                ev = item.event
                cur.execute(f"INSERT INTO cpis_access_events ({_EVENT_COLS}) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                            (ev.id, ev.nhs_number, self._enc_ts(ev.at), ev.user_id, ev.user_name, ev.role_profile_id,
                             ev.role_code, ev.role_name, ev.org_ods, ev.org_name, ev.request_id))
                new = cur.rowcount == 1
                created.append(new)
                if new and item.notifications:
                    cur.executemany("INSERT INTO cpis_outbox (id, access_id, la_code, nhs_number, payload, "
                                    "created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
                                    "ON CONFLICT (id) DO NOTHING",
                                    [(n.id, ev.id, n.la_code, n.nhs_number, dumps(n.payload), self._enc_ts(now),
                                      self._enc_ts(now)) for n in item.notifications])
            self.commit_effects(cur, encoded, answers[0] if answers else None)
        return created

    def _event(self, t: Sequence[Any]) -> AccessEvent:
        return AccessEvent(id=t[0], nhs_number=t[1], at=self._dec_ts(t[2]), user_id=t[3], user_name=t[4],
                           role_profile_id=t[5], role_code=t[6], role_name=t[7], org_ods=t[8], org_name=t[9],
                           request_id=t[10])

    def cpis_access_history(self, nhs_number: str, *, limit: int = 25) -> list[AccessEvent]:
        with self._read() as cur:
            cur.execute(f"SELECT {_EVENT_COLS} FROM cpis_access_events WHERE nhs_number = ? "
                        "ORDER BY at DESC, id LIMIT ?", (nhs_number, limit))
            return [self._event(t) for t in cur.fetchall()]

    def _outbox(self, t: Sequence[Any]) -> OutboxItem:
        return OutboxItem(id=t[0], access_id=t[1], la_code=t[2], nhs_number=t[3], payload=json.loads(t[4]),
                          created_at=self._dec_ts(t[5]), attempts=int(t[6]), next_attempt_at=self._dec_ts(t[7]),
                          claim_token=t[8], delivered_at=self._dec_ts(t[9]) if t[9] is not None else None,
                          last_error=t[10])

    def cpis_outbox_due(self, *, now: datetime | None = None) -> bool:
        with self._read() as cur:
            cur.execute(f"SELECT 1 FROM cpis_outbox WHERE {_DUE} LIMIT 1", (self._enc_ts(now or utcnow()),))
            return cur.fetchone() is not None

    def claim_cpis_notifications(self, token: str, *, lease_seconds: float, limit: int = 10,
                                 now: datetime | None = None) -> list[OutboxItem]:
        now = now or utcnow()
        # PostgreSQL: rows another process has claimed in a still-open transaction are skipped, not waited for;
        # SQLite: BEGIN IMMEDIATE already serialises every claimer. The lease is next_attempt_at itself.
        skip = f"{self._for_update} SKIP LOCKED" if self._for_update else ""
        with self._write() as cur:
            cur.execute(f"SELECT id FROM cpis_outbox WHERE {_DUE} ORDER BY next_attempt_at LIMIT ?{skip}",
                        (self._enc_ts(now), limit))
            ids = [r[0] for r in cur.fetchall()]
            if not ids:
                return []
            lease = self._enc_ts(now + timedelta(seconds=lease_seconds))
            cur.executemany("UPDATE cpis_outbox SET attempts = attempts + 1, next_attempt_at = ?, claim_token = ? "
                            "WHERE id = ?", [(lease, token, i) for i in ids])
            cur.execute(f"SELECT {_OUTBOX_COLS} FROM cpis_outbox WHERE claim_token = ? AND delivered_at IS NULL "
                        "ORDER BY created_at", (token,))
            return [self._outbox(t) for t in cur.fetchall() if t[0] in ids]

    def record_cpis_access(self, event: AccessEvent, notifications: Sequence[Notification], *,
                           audit: Sequence[AuditEntry] = (), answer: Answer | None = None,
                           now: datetime | None = None) -> bool:
        return self.record_cpis_accesses([AccessWrite(event, tuple(notifications), tuple(audit), answer)],
                                         now=now)[0]

    def finish_cpis_notification(self, key: str, token: str, *, delivered: bool, error: str | None = None,
                                 retry_at: datetime | None = None, now: datetime | None = None) -> bool:
        if delivered:
            return self.finish_cpis_notifications(token, delivered=[key], now=now) == 1
        when = retry_at or now or datetime.now(UTC)
        return self.finish_cpis_notifications(token, failed=[(key, error or "", when)], now=now) == 1

    def finish_cpis_notifications(self, token: str, *, delivered: Sequence[str] = (),
                                  failed: Sequence[tuple[str, str, datetime]] = (), now: datetime | None = None
                                  ) -> int:
        now = now or utcnow()
        changed = 0
        with self._write() as cur:
            for key in delivered:  # whoever delivered it (a late first claimer too): delivered once is delivered
                cur.execute("UPDATE cpis_outbox SET delivered_at = ?, last_error = NULL "
                            "WHERE id = ? AND delivered_at IS NULL", (self._enc_ts(now), key))
                changed += max(cur.rowcount, 0)
            for key, error, when in failed:
                cur.execute("UPDATE cpis_outbox SET next_attempt_at = ?, last_error = ? "
                            "WHERE id = ? AND claim_token = ? AND delivered_at IS NULL",
                            (self._enc_ts(when), error[:500], key, token))
                changed += max(cur.rowcount, 0)
        return changed

    def stuck_cpis_notifications(self, *, attempts: int, created_before: datetime) -> StuckNotifications:
        with self._read() as cur:
            cur.execute("SELECT COUNT(*), MIN(created_at), MAX(attempts) FROM cpis_outbox WHERE delivered_at IS NULL "
                        "AND ((attempts >= ? AND last_error IS NOT NULL) OR created_at < ?)",
                        (attempts, self._enc_ts(created_before)))
            count, oldest, most = cur.fetchone()
        return StuckNotifications(int(count), self._dec_ts(oldest) if oldest is not None else None, int(most or 0))

    def cpis_notifications(self, *, nhs_number: str | None = None) -> list[OutboxItem]:
        where, params = ("WHERE nhs_number = ?", (nhs_number,)) if nhs_number else ("", ())
        with self._read() as cur:
            cur.execute(f"SELECT {_OUTBOX_COLS} FROM cpis_outbox {where} ORDER BY created_at, id", params)
            return [self._outbox(t) for t in cur.fetchall()]

    # --- the service's own local-authority inbox ------------------------------------------------------------

    def receive_cpis_notification(self, key: str, la_code: str, payload: dict[str, Any], *,
                                  now: datetime | None = None) -> bool:
        with self._write() as cur:
            cur.execute("INSERT INTO cpis_inbox (id, la_code, received_at, payload) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT (id) DO NOTHING", (key, la_code, self._enc_ts(now or utcnow()), dumps(payload)))
            return cur.rowcount == 1

    def cpis_inbox(self, la_code: str, *, limit: int = 100) -> list[InboxItem]:
        with self._read() as cur:
            cur.execute("SELECT id, la_code, received_at, payload FROM cpis_inbox WHERE la_code = ? "
                        "ORDER BY received_at DESC, id LIMIT ?", (la_code, limit))
            return [InboxItem(id=t[0], la_code=t[1], received_at=self._dec_ts(t[2]), payload=json.loads(t[3]))
                    for t in cur.fetchall()]
