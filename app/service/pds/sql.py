"""Patient Demographics: the SQL both stores share (patient reads, searches, versioned updates and related
people; the bulk upsert ``put_patients`` is each engine's, in ``storage/sqlite.py`` / ``storage/postgres.py``)."""

# SQL text here is assembled only from this package's constants; every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from app.service.store.errors import NotFound, VersionConflict
from app.service.store.rows import Answer, AuditEntry, PatientJson, PatientRow, SearchFilter
from app.service.store.sql_effects import EffectsSql
from app.service.store.sqlbase import chunks

# Search indexes are partial: only records a search may return. Queries repeat these predicates verbatim so
# that both planners can match them against the index definitions.
ACTIVE = "superseded_by IS NULL AND invalidated = FALSE"
OPEN = f"{ACTIVE} AND restricted = FALSE"

PATIENT_COLS = ("nhs_number", "version", "resource", "family", "given", "family_phonetic", "given_phonetic",
                "birth_date", "gender", "postcode", "gp_ods", "restricted", "deceased", "superseded_by",
                "invalidated")
PCOLS = ", ".join(PATIENT_COLS)
PVALUES = ", ".join("?" for _ in PATIENT_COLS)
UPSERT_SET = ", ".join(f"{c} = excluded.{c}" for c in PATIENT_COLS[1:])
_UPDATE_SET = ", ".join(f"{c} = ?" for c in PATIENT_COLS[1:])
ANALYZE_AFTER = 10_000  # rows: a load at least this large refreshes the planner's statistics (``put_patients``)


class PdsSql(EffectsSql):
    def patient_params(self, r: PatientRow) -> tuple[Any, ...]:
        return (r.nhs_number, r.version, self._enc_json(r.resource), r.family, r.given, r.family_phonetic,
                r.given_phonetic, self._enc_date(r.birth_date), r.gender, r.postcode, r.gp_ods,
                bool(r.restricted), bool(r.deceased), r.superseded_by, bool(r.invalidated))

    def _patient(self, t: Sequence[Any]) -> PatientRow:
        return PatientRow(nhs_number=t[0], version=int(t[1]), resource=self._dec_json(t[2]), family=t[3],
                          given=t[4], family_phonetic=t[5], given_phonetic=t[6], birth_date=self._dec_date(t[7]),
                          gender=t[8], postcode=t[9], gp_ods=t[10], restricted=bool(t[11]), deceased=bool(t[12]),
                          superseded_by=t[13], invalidated=bool(t[14]))

    def get_patient(self, nhs_number: str) -> PatientRow | None:
        with self._read() as cur:
            cur.execute(f"SELECT {PCOLS} FROM patients WHERE nhs_number = ?", (nhs_number,))
            row = cur.fetchone()
        return self._patient(row) if row else None

    _json_text = "resource"  # PostgreSQL: "resource::text"

    def get_patient_json(self, nhs_number: str) -> PatientJson | None:
        with self._read() as cur:
            cur.execute(f"SELECT nhs_number, version, {self._json_text}, restricted, superseded_by, invalidated "
                        "FROM patients WHERE nhs_number = ?", (nhs_number,))
            t = cur.fetchone()
        if t is None:
            return None
        return PatientJson(nhs_number=t[0], version=int(t[1]), json=t[2], restricted=bool(t[3]),
                           superseded_by=t[4], invalidated=bool(t[5]))

    def update_patient(self, nhs_number: str, expected_version: int, row: PatientRow, *,
                       audit: Sequence[AuditEntry] = (), answer: Answer | None = None) -> PatientRow:
        if row.nhs_number != nhs_number:
            raise ValueError(f"row is for {row.nhs_number}, not {nhs_number}")
        if row.version != expected_version + 1:
            raise ValueError(f"row.version must be expected_version + 1 ({expected_version + 1}), not {row.version}")
        params = self.patient_params(row)[1:]
        encoded = self._encode_audit(audit)
        with self._write() as cur:
            cur.execute(f"UPDATE patients SET {_UPDATE_SET} WHERE nhs_number = ? AND version = ?",
                        (*params, nhs_number, expected_version))
            if cur.rowcount == 1:
                self.commit_effects(cur, encoded, answer)
                return row
            cur.execute("SELECT version FROM patients WHERE nhs_number = ?", (nhs_number,))
            current = cur.fetchone()
        if current is None:
            raise NotFound("patient", nhs_number)
        raise VersionConflict(nhs_number, expected_version, int(current[0]))

    def search_sql(self, f: SearchFilter) -> tuple[str, list[Any]]:
        where: list[str] = [ACTIVE]
        params: list[Any] = []

        def add(condition: str, *values: Any) -> None:
            where.append(condition)
            params.extend(values)

        if not f.fuzzy:
            if f.family:
                add("family = ?", f.family)
            if f.family_prefix:
                add("family >= ? AND family < ?", f.family_prefix,
                    f.family_prefix[:-1] + chr(ord(f.family_prefix[-1]) + 1))
        if f.family_phonetic:
            add("family_phonetic = ?", f.family_phonetic)
        if f.given_phonetic:
            add("given_phonetic = ?", f.given_phonetic)
        if f.birth_date_from is not None:
            add("birth_date >= ?", self._enc_date(f.birth_date_from))
        if f.birth_date_to is not None:
            add("birth_date <= ?", self._enc_date(f.birth_date_to))
        if f.gender:
            add("gender = ?", f.gender)
        if f.postcode:
            add("postcode = ?", f.postcode)
        if f.gp_ods:
            add("gp_ods = ?", f.gp_ods)
        if f.postcode or f.gp_ods:
            where.append("restricted = FALSE")
        return f"SELECT {PCOLS} FROM patients WHERE {' AND '.join(where)} LIMIT ?", [*params, f.limit]

    def explain_search(self, f: SearchFilter) -> str:
        """The database's plan for ``search(f)`` (operations and benchmarks check that indexes are used)."""
        sql, params = self.search_sql(f)
        with self._read() as cur:
            cur.execute(self._explain_prefix + sql, params)
            return "\n".join(str(r[-1]) for r in cur.fetchall())

    def search(self, f: SearchFilter) -> list[PatientRow]:
        if f.limit <= 0:
            return []
        sql, params = self.search_sql(f)
        with self._read() as cur:
            cur.execute(sql, params)
            rows = cur.fetchall()
        return sorted((self._patient(r) for r in rows), key=lambda p: p.nhs_number)

    def _patients_empty(self) -> bool:
        """Whether no patient is stored yet (``put_patients`` takes its bulk path into an empty table)."""
        with self._read() as cur:
            cur.execute("SELECT 1 FROM patients LIMIT 1")
            return cur.fetchone() is None

    def related_persons(self, nhs_number: str) -> list[dict[str, Any]]:
        with self._read() as cur:
            cur.execute("SELECT resource FROM related_persons WHERE nhs_number = ? ORDER BY position",
                        (nhs_number,))
            return [self._dec_json(r[0]) for r in cur.fetchall()]

    def put_related_persons(self, items: Iterable[tuple[str, Sequence[dict[str, Any]]]]) -> int:
        done = 0
        for batch in chunks(items, 5000):
            inserts = [(nhs, i, self._enc_json(res)) for nhs, resources in batch for i, res in enumerate(resources)]
            with self._write() as cur:
                cur.executemany("DELETE FROM related_persons WHERE nhs_number = ?", [(nhs,) for nhs, _ in batch])
                if inserts:
                    cur.executemany("INSERT INTO related_persons (nhs_number, position, resource) VALUES (?, ?, ?)",
                                    inserts)
            done += len(batch)
        return done
