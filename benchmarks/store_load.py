"""Store load and search benchmark: N synthetic patients into SQLite and PostgreSQL, then timed searches.

For each store: bulk load time (``put_patients``), then ``--searches`` searches of the shapes PDS uses (exact
family + birth date, family + a one-year range + gender, fuzzy phonetic keys, 3-letter prefix, postcode + family,
GP + prefix + range) timed end to end including a simple ranking step, reported as p50/p95/p99/max, with the plan
of each shape; then audit group-commit throughput through ``AuditWriter`` from many threads.

Usage: python benchmarks/store_load.py [--rows 1000000] [--searches 200] [--stores sqlite,postgresql]
                                       [--postgres-url URL] [--audit-seconds 5] [--workdir DIR]
Without --postgres-url (or $SPINEDESK_BENCH_POSTGRES_URL) a throwaway server is started with
scripts/pg-test-server.sh. Rows are simple synthetic ones built here (the real seed generator lives elsewhere).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.service.storage import open_store  # noqa: E402
from app.service.store import AuditEntry, AuditWriter, PatientRow, SearchFilter  # noqa: E402


def words(text: str) -> list[str]:
    return text.split()


SURNAMES = words(
    "SMITH JONES WILLIAMS TAYLOR BROWN DAVIES EVANS WILSON THOMAS JOHNSON ROBERTS ROBINSON THOMPSON "
    "WRIGHT WALKER WHITE EDWARDS HUGHES GREEN HALL LEWIS HARRIS CLARKE PATEL JACKSON WOOD TURNER MARTIN "
    "COOPER HILL WARD MORRIS MOORE CLARK LEE KING BAKER HARRISON MORGAN ALLEN JAMES SCOTT PHILLIPS WATSON "
    "DAVIS PARKER PRICE BENNETT YOUNG GRIFFITHS MITCHELL KELLY COOK CARTER RICHARDSON BAILEY COLLINS BELL "
    "SHAW MURPHY MILLER COX RICHARDS KHAN MARSHALL ANDERSON SIMPSON ELLIS ADAMS SINGH BEGUM WILKINSON "
    "FOSTER CHAPMAN POWELL WEBB ROGERS GRAY MASON ALI HUNT HUSSAIN CAMPBELL MATTHEWS OWEN PALMER HOLMES "
    "MILLS BARNES KNIGHT LLOYD BUTLER RUSSELL BARKER FISHER STEVENS JENKINS MURRAY DIXON HARVEY"
)
GIVEN = words(
    "OLIVIA AMELIA ISLA AVA MIA IVY LILY ISABELLA ROSIE SOPHIA GRACE FREYA WILLOW EMILY ELLA POPPY EVIE "
    "MARGARET SUSAN JANE MARY PATRICIA LINDA ELIZABETH SARAH KAREN NOAH GEORGE OLIVER ARTHUR MUHAMMAD LEO "
    "HARRY OSCAR ARCHIE HENRY THEO JACK CHARLIE JAMES JOHN DAVID MICHAEL PAUL PETER ROBERT WILLIAM THOMAS "
    "RICHARD MARK ANDREW STEPHEN IAN ALAN KEVIN GARY"
)
SYLLABLES = words(
    "AB AL AN AR BE BO CA CO DA DE EL EN ER FA GA HA IN KA LA LE LI LO MA ME MO NA NE OR RA RE RO SA SE "
    "TA TO WA"
)
OUTWARD = ["LS", "M", "B", "L", "S", "NE", "BS", "CF", "EX", "G", "EH", "YO", "HU", "NG", "LE", "CV", "OX", "SO"]


def soundex(name: str) -> str:
    codes = {**dict.fromkeys("BFPV", "1"), **dict.fromkeys("CGJKQSXZ", "2"), **dict.fromkeys("DT", "3"), "L": "4",
             **dict.fromkeys("MN", "5"), "R": "6"}
    out, last = name[:1], codes.get(name[:1], "")
    for ch in name[1:]:
        code = codes.get(ch, "")
        if code and code != last:
            out += code
        if ch not in "HW":
            last = code
    return (out + "000")[:4]


def nhs_number(n: int) -> str:
    """The n-th modulus-11-valid 10-digit NHS-style number in the 9 000 000 000 range (skips invalid ones)."""
    while True:
        digits = f"{9_000_000_00 + n:09d}"
        check = 11 - sum(int(d) * w for d, w in zip(digits, range(10, 1, -1), strict=True)) % 11
        if check == 11:
            check = 0
        if check != 10:
            return digits + str(check)
        n += 50_000_000  # step out of the way; collisions are impossible below 50 M rows


def surname_pool(rng: random.Random, size: int) -> list[str]:
    made = {"".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))) for _ in range(size * 2)}
    return SURNAMES + sorted(made)[: size - len(SURNAMES)]


def synthetic_rows(n: int, seed: int = 1) -> Iterator[PatientRow]:
    rng = random.Random(seed)
    pool = surname_pool(rng, 20_000)
    weights = [1 / (rank + 1) ** 0.9 for rank in range(len(pool))]  # Zipf-like: SMITH ~1 %
    families = rng.choices(pool, weights, k=n)
    start = date(1925, 1, 1)
    for i in range(n):
        family, given = families[i], rng.choice(GIVEN)
        born = start + timedelta(days=rng.randrange(36_500))
        inward = f"{rng.randrange(10)}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}A"
        postcode = f"{rng.choice(OUTWARD)}{rng.randrange(1, 30)}{inward}"
        gp = f"{rng.choice('ABCDEFGHJKLMNPY')}{rng.randrange(80_000, 80_600):05d}"
        nhs = nhs_number(i)
        resource = {
            "resourceType": "Patient", "id": nhs, "meta": {"versionId": "1"},
            "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs}],
            "name": [{"use": "usual", "family": family.title(), "given": [given.title()], "prefix": ["Mx"]}],
            "gender": rng.choice(("male", "female")), "birthDate": born.isoformat(),
            "address": [{"use": "home", "line": [f"{rng.randrange(1, 300)} {rng.choice(SURNAMES).title()} Road"],
                         "postalCode": postcode}],
            "telecom": [{"system": "phone", "value": f"0{rng.randrange(10**9, 10**10)}", "use": "home"}],
            "generalPractitioner": [{"type": "Organization",
                                     "identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code",
                                                    "value": gp}}],
        }
        yield PatientRow(nhs_number=nhs, version=1, resource=resource, family=family, given=given,
                         family_phonetic=soundex(family), given_phonetic=soundex(given), birth_date=born,
                         gender=resource["gender"], postcode=postcode, gp_ods=gp, restricted=rng.random() < 0.005,
                         deceased=rng.random() < 0.01, superseded_by=None, invalidated=False)


def search_plan(rows: list[PatientRow], count: int, seed: int = 7) -> list[tuple[str, SearchFilter]]:
    rng = random.Random(seed)
    shapes = ["family_dob"] * 8 + ["family_range_gender"] * 4 + ["fuzzy"] * 3 + ["prefix_dob"] * 2 + \
             ["postcode_family"] * 2 + ["gp_prefix_range"]
    plan = []
    for i in range(count):
        r = rng.choice(rows)
        shape = shapes[i % len(shapes)]
        born, year = r.birth_date, timedelta(days=365)
        f = {
            "family_dob": SearchFilter(family=r.family, birth_date_from=born, birth_date_to=born, limit=51),
            "family_range_gender": SearchFilter(family=r.family, birth_date_from=born - year,
                                                birth_date_to=born + year, gender=r.gender, limit=51),
            "fuzzy": SearchFilter(family_phonetic=r.family_phonetic, given_phonetic=r.given_phonetic,
                                  birth_date_from=born, birth_date_to=born, fuzzy=True, limit=51),
            "prefix_dob": SearchFilter(family_prefix=r.family[:3], birth_date_from=born, birth_date_to=born, limit=51),
            "postcode_family": SearchFilter(postcode=r.postcode, family=r.family, limit=51),
            "gp_prefix_range": SearchFilter(gp_ods=r.gp_ods, family_prefix=r.family[:2], birth_date_from=born - year,
                                            birth_date_to=born + year, limit=51),
        }[shape]
        plan.append((shape, f))
    return plan


def rank(found: list[PatientRow], f: SearchFilter) -> list[PatientRow]:
    """Stand-in for the domain's scoring: exact family and birth date first."""
    def score(p: PatientRow) -> float:
        return (p.family == f.family) + (p.birth_date == f.birth_date_from) * 0.5
    return sorted(found, key=score, reverse=True)[:50]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def audit_throughput(store, seconds: float, threads: int = 32) -> tuple[float, int]:
    writer = AuditWriter(store)
    stop = time.monotonic() + seconds
    counts = [0] * threads

    def work(t: int) -> None:
        i = 0
        while time.monotonic() < stop:
            writer.append(AuditEntry(f"user{t}", "555254242106", "B86001", "pds.read", "9000000009", f"{t}-{i}",
                                     "200", {"bench": True}))
            i += 1
        counts[t] = i

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    started = time.monotonic()
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    elapsed = time.monotonic() - started
    writer.close()
    return sum(counts) / elapsed, sum(counts)


def bench(name: str, url: str, rows: list[PatientRow], searches: int, audit_seconds: float) -> None:
    store = open_store(url)
    try:
        started = time.perf_counter()
        store.put_patients(rows)
        load = time.perf_counter() - started
        print(f"\n## {name}\nload {len(rows):,} rows: {load:.1f} s ({len(rows) / load:,.0f} rows/s)")
        plan = search_plan(rows, searches)
        for _, f in plan[:20]:  # warm caches and prepared statements as a running service would have
            store.search(f)
        times: dict[str, list[float]] = {}
        hits = []
        for shape, f in plan:
            t0 = time.perf_counter()
            found = rank(store.search(f), f)
            times.setdefault(shape, []).append((time.perf_counter() - t0) * 1000)
            hits.append(len(found))
        every = [t for ts in times.values() for t in ts]
        print(f"{searches} searches: p50 {pct(every, 50):.2f} ms, p95 {pct(every, 95):.2f} ms, "
              f"p99 {pct(every, 99):.2f} ms, max {max(every):.2f} ms; mean hits {statistics.mean(hits):.1f}")
        for shape, ts in times.items():
            f = next(f for s, f in plan if s == shape)
            plan_text = store.explain_search(f).replace("\n", " | ")
            print(f"  {shape:20} n={len(ts):3} p50 {pct(ts, 50):6.2f} ms  p95 {pct(ts, 95):6.2f} ms   "
                  f"{plan_text[:150]}")
        if audit_seconds > 0:
            rate, total = audit_throughput(store, audit_seconds)
            reason = store.verify_audit().reason
            print(f"audit via AuditWriter (32 threads, group commit): {rate:,.0f} records/s ({total:,} in "
                  f"{audit_seconds:.0f} s); verify: {reason}")
    finally:
        store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--searches", type=int, default=200)
    ap.add_argument("--stores", default="sqlite,postgresql")
    ap.add_argument("--postgres-url", default=os.environ.get("SPINEDESK_BENCH_POSTGRES_URL"))
    ap.add_argument("--audit-seconds", type=float, default=5)
    ap.add_argument("--workdir", type=Path)
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="spinedesk-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"# store benchmark: {args.rows:,} patients, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}")
    t0 = time.perf_counter()
    rows = list(synthetic_rows(args.rows))
    print(f"generated rows in {time.perf_counter() - t0:.1f} s (not part of the load times)")
    stores = args.stores.split(",")
    if "sqlite" in stores:
        db = work / "bench.db"
        for p in work.glob("bench.db*"):
            p.unlink()
        bench("SQLite (WAL, synchronous=FULL)", f"sqlite://{db}", rows, args.searches, args.audit_seconds)
    if "postgresql" in stores:
        pgdir, url = None, args.postgres_url
        if not url:
            pgdir = tempfile.mkdtemp(prefix="spinedesk-bench-pg-")
            url = subprocess.run([str(ROOT / "scripts/pg-test-server.sh"), "start", pgdir], check=True,
                                 capture_output=True, text=True).stdout.strip()
        try:
            bench("PostgreSQL (fsync on, default settings)", url, rows, args.searches, args.audit_seconds)
        finally:
            if pgdir:
                subprocess.run([str(ROOT / "scripts/pg-test-server.sh"), "stop", pgdir], check=False)


if __name__ == "__main__":
    main()
