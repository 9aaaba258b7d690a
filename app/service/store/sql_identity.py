"""Users, role profiles, login challenges and sessions: the SQL both stores share."""

# SQL text here is assembled only from this package's constants; every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from .base import Challenge, RoleProfile, Session, SessionPrincipal, User
from .errors import AlreadyExists, NotFound
from .sqlbase import SqlBase, norm_fingerprint, norm_nhs_uuid, norm_uuid, utcnow

_ROLE_COLS = "id, user_id, org_ods, org_name, role_code, role_name, activity_codes"
_CHALLENGE_COLS = "nonce, cert_fingerprint, created_at, expires_at"
_SESSION_COLS = "token_hash, user_id, created_at, expires_at, cert_issuer, cert_serial, role_profile_id"


class IdentitySql(SqlBase):
    # --- users and role profiles ----------------------------------------------------------------------------

    def _users(self, cur: Any, where: str, params: Sequence[Any]) -> list[User]:
        cur.execute(f"SELECT id, name, active FROM users WHERE {where} ORDER BY id", params)
        users = cur.fetchall()
        if not users:
            return []
        sub = f"user_id IN (SELECT id FROM users WHERE {where})"
        cur.execute(f"SELECT user_id, card_uuid FROM user_cards WHERE {sub} ORDER BY card_uuid", params)
        cards = cur.fetchall()
        cur.execute(f"SELECT user_id, fingerprint FROM user_certificates WHERE {sub} ORDER BY fingerprint", params)
        certs = cur.fetchall()
        cur.execute(f"SELECT user_id, nhs_uuid FROM user_nhs_ids WHERE {sub} ORDER BY nhs_uuid", params)
        nhs_ids = cur.fetchall()
        cur.execute(f"SELECT {_ROLE_COLS} FROM role_profiles WHERE {sub} ORDER BY id", params)
        roles = [self._role(r) for r in cur.fetchall()]
        return [User(id=uid, name=name, active=bool(active),
                     card_uuids=tuple(c for u, c in cards if u == uid),
                     cert_fingerprints=tuple(c for u, c in certs if u == uid),
                     role_profiles=tuple(r for r in roles if r.user_id == uid),
                     nhs_uuids=tuple(n for u, n in nhs_ids if u == uid))
                for uid, name, active in users]

    def _one_user(self, where: str, params: Sequence[Any]) -> User | None:
        with self._read(tx=True) as cur:
            users = self._users(cur, where, params)
        return users[0] if users else None

    @staticmethod
    def _role(t: Sequence[Any]) -> RoleProfile:
        return RoleProfile(id=t[0], user_id=t[1], org_ods=t[2], org_name=t[3], role_code=t[4], role_name=t[5],
                           activity_codes=tuple(json.loads(t[6])))

    def _link_credentials(self, cur: Any, user_id: str, card_uuids: Iterable[str],
                          fingerprints: Iterable[str], nhs_uuids: Iterable[str] = ()) -> None:
        for table, column, kind, values in (("user_cards", "card_uuid", "card", map(norm_uuid, card_uuids)),
                                            ("user_certificates", "fingerprint", "certificate",
                                             map(norm_fingerprint, fingerprints)),
                                            ("user_nhs_ids", "nhs_uuid", "NHS user UUID",
                                             map(norm_nhs_uuid, nhs_uuids))):
            for value in dict.fromkeys(values):
                cur.execute(f"SELECT user_id FROM {table} WHERE {column} = ?", (value,))
                if row := cur.fetchone():
                    if table == "user_nhs_ids" and row[0] == user_id:
                        continue  # already this user's: registering a person again changes nothing
                    raise AlreadyExists(kind, value, owner=row[0])
                cur.execute(f"INSERT INTO {table} ({column}, user_id) VALUES (?, ?)", (value, user_id))

    def add_user(self, user_id: str, name: str, *, card_uuids: Iterable[str] = (),
                 cert_fingerprints: Iterable[str] = (), nhs_uuids: Iterable[str] = ()) -> User:
        nhs_uuids = [norm_nhs_uuid(n) for n in nhs_uuids]  # refuse a malformed one before anything is written
        try:
            with self._write() as cur:
                cur.execute("SELECT 1 FROM users WHERE id = ?", (user_id,))
                if cur.fetchone():
                    raise AlreadyExists("user", user_id)
                cur.execute("INSERT INTO users (id, name, active, created_at) VALUES (?, ?, TRUE, ?)",
                            (user_id, name, self._enc_ts(utcnow())))
                self._link_credentials(cur, user_id, card_uuids, cert_fingerprints, nhs_uuids)
        except self._integrity_errors as exc:  # lost a race with another process
            raise AlreadyExists("user or credential", user_id) from exc
        return self._get_existing_user(user_id)

    def add_credentials(self, user_id: str, *, card_uuids: Iterable[str] = (),
                        cert_fingerprints: Iterable[str] = (), nhs_uuids: Iterable[str] = ()) -> User:
        nhs_uuids = [norm_nhs_uuid(n) for n in nhs_uuids]
        try:
            with self._write() as cur:
                cur.execute("SELECT 1 FROM users WHERE id = ?", (user_id,))
                if not cur.fetchone():
                    raise NotFound("user", user_id)
                self._link_credentials(cur, user_id, card_uuids, cert_fingerprints, nhs_uuids)
        except self._integrity_errors as exc:
            raise AlreadyExists("credential", user_id) from exc
        return self._get_existing_user(user_id)

    def _get_existing_user(self, user_id: str) -> User:
        user = self.get_user(user_id)
        if user is None:
            raise NotFound("user", user_id)
        return user

    def get_user(self, user_id: str) -> User | None:
        return self._one_user("id = ?", (user_id,))

    def list_users(self, *, include_inactive: bool = True) -> list[User]:
        with self._read(tx=True) as cur:
            return self._users(cur, "1 = 1" if include_inactive else "active = TRUE", ())

    def deactivate_user(self, user_id: str) -> User:
        with self._write() as cur:
            cur.execute("UPDATE users SET active = FALSE WHERE id = ?", (user_id,))
            if cur.rowcount == 0:
                raise NotFound("user", user_id)
            cur.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))
        return self._get_existing_user(user_id)

    def user_by_card_uuid(self, card_uuid: str) -> User | None:
        return self._one_user("id IN (SELECT user_id FROM user_cards WHERE card_uuid = ?)", (norm_uuid(card_uuid),))

    def user_by_nhs_uuid(self, nhs_uuid: str) -> User | None:
        return self._one_user("id IN (SELECT user_id FROM user_nhs_ids WHERE nhs_uuid = ?)", (nhs_uuid.strip(),))

    def user_by_cert_fingerprint(self, fingerprint: str) -> User | None:
        return self._one_user("id IN (SELECT user_id FROM user_certificates WHERE fingerprint = ?)",
                              (norm_fingerprint(fingerprint),))

    def add_role_profile(self, profile: RoleProfile) -> RoleProfile:
        try:
            with self._write() as cur:
                cur.execute("SELECT 1 FROM users WHERE id = ?", (profile.user_id,))
                if not cur.fetchone():
                    raise NotFound("user", profile.user_id)
                cur.execute("SELECT 1 FROM role_profiles WHERE id = ?", (profile.id,))
                if cur.fetchone():
                    raise AlreadyExists("role profile", profile.id)
                cur.execute(f"INSERT INTO role_profiles ({_ROLE_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (profile.id, profile.user_id, profile.org_ods, profile.org_name, profile.role_code,
                             profile.role_name, json.dumps(list(profile.activity_codes))))
        except self._integrity_errors as exc:
            raise AlreadyExists("role profile", profile.id) from exc
        return RoleProfile(profile.id, profile.user_id, profile.org_ods, profile.org_name, profile.role_code,
                           profile.role_name, tuple(profile.activity_codes))

    def remove_role_profile(self, profile_id: str) -> None:
        with self._write() as cur:
            cur.execute("DELETE FROM role_profiles WHERE id = ?", (profile_id,))
            if cur.rowcount == 0:
                raise NotFound("role profile", profile_id)

    def get_role_profile(self, profile_id: str) -> RoleProfile | None:
        with self._read() as cur:
            cur.execute(f"SELECT {_ROLE_COLS} FROM role_profiles WHERE id = ?", (profile_id,))
            row = cur.fetchone()
        return self._role(row) if row else None

    # --- login challenges and sessions ----------------------------------------------------------------------

    def create_challenge(self, nonce: str, cert_fingerprint: str, expires_at: datetime,
                         *, now: datetime | None = None) -> Challenge:
        c = Challenge(nonce, norm_fingerprint(cert_fingerprint), now or utcnow(), expires_at)
        try:
            with self._write() as cur:
                cur.execute(f"INSERT INTO challenges ({_CHALLENGE_COLS}) VALUES (?, ?, ?, ?)",
                            (c.nonce, c.cert_fingerprint, self._enc_ts(c.created_at), self._enc_ts(c.expires_at)))
        except self._integrity_errors as exc:
            raise AlreadyExists("challenge", nonce) from exc
        return c

    def consume_challenge(self, nonce: str, *, now: datetime | None = None) -> Challenge | None:
        with self._write() as cur:
            cur.execute(f"DELETE FROM challenges WHERE nonce = ? RETURNING {_CHALLENGE_COLS}", (nonce,))
            rows = cur.fetchall()
        if not rows:
            return None
        n, fp, created, expires = rows[0]
        c = Challenge(n, fp, self._dec_ts(created), self._dec_ts(expires))
        return c if c.expires_at > (now or utcnow()) else None

    def create_session(self, token_hash: str, user_id: str, expires_at: datetime, *, now: datetime | None = None,
                       cert_issuer: str = "", cert_serial: str = "", role_profile_id: str = "") -> Session:
        s = Session(token_hash, user_id, now or utcnow(), expires_at, cert_issuer, cert_serial, role_profile_id)
        try:
            with self._write() as cur:
                cur.execute(f"INSERT INTO sessions ({_SESSION_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (s.token_hash, s.user_id, self._enc_ts(s.created_at), self._enc_ts(s.expires_at),
                             s.cert_issuer, s.cert_serial, s.role_profile_id))
        except self._integrity_errors as exc:
            raise AlreadyExists("session (or unknown user)", user_id) from exc
        return s

    def get_session(self, token_hash: str, *, now: datetime | None = None) -> Session | None:
        with self._read() as cur:
            cur.execute(f"SELECT {_SESSION_COLS} FROM sessions WHERE token_hash = ? AND expires_at > ?",
                        (token_hash, self._enc_ts(now or utcnow())))
            row = cur.fetchone()
        return (Session(row[0], row[1], self._dec_ts(row[2]), self._dec_ts(row[3]), row[4], row[5], row[6])
                if row else None)

    def bind_session_role(self, token_hash: str, role_profile_id: str, *, now: datetime | None = None) -> str | None:
        with self._write() as cur:
            cur.execute("UPDATE sessions SET role_profile_id = ? WHERE token_hash = ? AND expires_at > ? AND "
                        "role_profile_id = '' AND EXISTS (SELECT 1 FROM role_profiles r WHERE r.id = ? AND "
                        "r.user_id = sessions.user_id)",
                        (role_profile_id, token_hash, self._enc_ts(now or utcnow()), role_profile_id))
            cur.execute("SELECT role_profile_id FROM sessions WHERE token_hash = ? AND expires_at > ?",
                        (token_hash, self._enc_ts(now or utcnow())))
            row = cur.fetchone()
        return row[0] if row else None

    def session_principal(self, token_hash: str, role_profile_id: str, *, now: datetime | None = None
                          ) -> SessionPrincipal | None:
        with self._read() as cur:
            cur.execute("SELECT u.id, u.name, u.active, s.cert_issuer, s.cert_serial, s.role_profile_id, r.id, "
                        "r.user_id, r.org_ods, r.org_name, r.role_code, r.role_name, r.activity_codes FROM sessions s "
                        "JOIN users u ON u.id = s.user_id "
                        "LEFT JOIN role_profiles r ON r.user_id = u.id AND r.id = s.role_profile_id AND r.id = ? "
                        "WHERE s.token_hash = ? AND s.expires_at > ?",
                        (role_profile_id, token_hash, self._enc_ts(now or utcnow())))
            row = cur.fetchone()
        if row is None or not row[2]:
            return None
        role = self._role(row[6:]) if row[6] is not None else None
        user = User(id=row[0], name=row[1], active=True, role_profiles=(role,) if role else ())
        return SessionPrincipal(user, role, row[3], row[4], row[5])

    def revoke_session(self, token_hash: str) -> bool:
        with self._write() as cur:
            cur.execute("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))
            return bool(cur.rowcount)

    def revoke_all_sessions_for_user(self, user_id: str) -> int:
        with self._write() as cur:
            cur.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))
            return int(cur.rowcount)

    def live_session_certificates(self, *, now: datetime | None = None) -> list[tuple[str, str]]:
        with self._read() as cur:
            cur.execute("SELECT DISTINCT cert_issuer, cert_serial FROM sessions WHERE expires_at > ? AND "
                        "cert_issuer <> ''", (self._enc_ts(now or utcnow()),))
            return [(r[0], r[1]) for r in cur.fetchall()]

    def end_sessions_for_certificates(self, certificates: Iterable[tuple[str, str]]) -> int:
        ended = 0
        with self._write() as cur:
            for issuer, serial in dict.fromkeys(certificates):
                cur.execute("DELETE FROM sessions WHERE cert_issuer = ? AND cert_serial = ?", (issuer, serial))
                ended += int(cur.rowcount)
        return ended
