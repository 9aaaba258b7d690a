"""Synthetic Reasonable Adjustment Flags (Patient Flags model) content for seeded patients (deterministic per seed).

About 2% of live patients (never superseded or invalidated records) get an active NRAF flag, chosen by a hash of
the seed and the NHS number, so the same seed always flags the same patients with the same content whatever the
chunking. NHS's full reference patient 9000000009 always has one. Content hangs together: adjustments are drawn
from the RA-FlagCode value set by what suits the impairments (Braille for vision, a BSL interpreter for hearing,
Easyread for learning, ...), consent is mostly the patient's own, sometimes a best-interest decision (with its
summary) or an attorney. Flags are written in bulk (``FlagStore.put_flags``); re-seeding skips what is there.
"""

from __future__ import annotations

import gc
import random
import uuid
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from app.service.flags.codes import NRAF, FlagCodes, load_codes
from app.service.flags.fhir import render_flag
from app.service.flags.model import (
    ACTIVE,
    ATTORNEY_OR_DEPUTY,
    BESPOKE,
    BEST_INTEREST,
    OTHER_IMPAIRMENT,
    PATIENT_CONSENT,
    PREFER_NOT_TO_SAY,
    Adjustment,
    Consent,
    Impairment,
    RaContent,
    Recorder,
)
from app.service.flags.store import FlagRow, FlagStore
from app.service.store import PatientRow

RATE_PER_MILLE = 20
ALWAYS = frozenset({"9000000009"})  # NHS's full reference record
NAMESPACE = uuid.UUID("0b6f4d0e-6a57-4c55-9a43-3f1b2c7e9a01")
FIRST = datetime(2021, 3, 1, tzinfo=UTC)  # the national flag went live in 2021
SPAN_DAYS = 1650
SUITS = {  # impairment group -> words in adjustment displays that suit it
    "1": ("Braille", "audio", "Moon", "sighted guide", "20 point", "verbally", "read out", "electronic"),
    "2": ("Sign Language", "sign language", "lipspeaker", "hearing loop", "text relay", "speech to text",
          "visual alert", "lip read", "email"),
    "3": ("telephone", "carer", "email"),
    "4": ("telephone", "verbally", "email", "electronic"),
    "5": ("Easyread", "Makaton", "advocate", "symbols", "carer", "verbally"),
    "6": ("carer", "text message", "audio", "Easyread"),
    "7": ("advocate", "letter", "telephone"),
    "8": ("telephone", "email", "carer"),
    "9": ("Easyread", "visual alert", "symbols", "advocate", "letter"),
}
CLINICIANS = (("Dr Amara Okafor", "S8000:G8000:R8000", "Clinical Practitioner Access Role"),
              ("Nurse Sam Whitfield", "S8000:G8000:R8001", "Nurse Access Role"),
              ("Dr Priya Raman", "S8000:G8000:R8000", "Clinical Practitioner Access Role"))
BESPOKE_TEXT = ("Book the first appointment of the day; the waiting room is too busy",
                "Allow a double appointment and a quiet room", "Contact the patient's daughter before any visit")


def adjustment_category(display: str) -> str:
    """The RA-FlagCategory an adjustment belongs to, judged from its display text."""
    if "contact" in display:
        return "003"
    if "information" in display or "Braille" in display:
        return "004"
    if any(w in display for w in ("interpreter", "lipspeaker", "note taker", "reporter", "guide", "communicator")):
        return "002"
    return "001"


@lru_cache(maxsize=1)
def _pools(codes: FlagCodes) -> dict[str, tuple[str, ...]]:
    items = sorted(codes.adjustment.codes.items())
    pools = {g: tuple(c for c, d in items if any(w in d for w in words)) for g, words in SUITS.items()}
    pools["*"] = tuple(c for c, _ in items)
    return pools


def content_for(rng: random.Random, codes: FlagCodes) -> RaContent:
    pools = _pools(codes)
    roll = rng.random()
    if roll < 0.8:
        consent = Consent(PATIENT_CONSENT)
    elif roll < 0.92:
        consent = Consent(BEST_INTEREST, summary="Best-interest meeting with the patient's family and care team; "
                          "the patient lacks capacity to consent to sharing this information")
    else:
        consent = Consent(ATTORNEY_OR_DEPUTY, performer="Lasting power of attorney for health and welfare")
    roll = rng.random()
    if roll < 0.05:
        impairments: list[Impairment] = [Impairment(PREFER_NOT_TO_SAY)]
    else:
        groups = rng.sample(sorted(SUITS), rng.choice((1, 1, 1, 2, 2, 3)))
        impairments = [Impairment(g) for g in sorted(groups, key=int)]
        if roll > 0.97:
            impairments.append(Impairment(OTHER_IMPAIRMENT, note="Chronic pain limits sitting for long periods"))
    adjustments: list[Adjustment] = []
    for item in impairments:
        pool = pools.get(item.code) or pools["*"]
        code = rng.choice(pool)
        if all(a.code != code for a in adjustments):
            display = codes.adjustment.codes[code]
            adjustments.append(Adjustment(adjustment_category(display), code, display))
    if rng.random() < 0.1:
        adjustments.append(Adjustment(BESPOKE, text=rng.choice(BESPOKE_TEXT)))
    return RaContent(consent, tuple(impairments), tuple(adjustments))


def flag_for(patient: PatientRow, seed: int, codes: FlagCodes) -> FlagRow:
    key = f"{seed}:{patient.nhs_number}:{NRAF}"
    rng = random.Random(key)  # noqa: S311 - synthetic data, not security
    created = FIRST + timedelta(days=rng.randrange(SPAN_DAYS), minutes=rng.randrange(8 * 60, 18 * 60))
    name, role_code, role_name = rng.choice(CLINICIANS)
    org = patient.gp_ods or "A81001"
    recorder = Recorder(f"seed-{zlib.crc32(name.encode()):08x}", name, role_code, role_name, org, f"Practice {org}",
                        created)
    flag_id = str(uuid.uuid5(NAMESPACE, key))
    resource = render_flag(flag_id=flag_id, nhs=patient.nhs_number, version=1, content=content_for(rng, codes),
                           recorder=recorder, activity="CREATE", created=created, codes=codes)
    return FlagRow(flag_id, patient.nhs_number, NRAF, ACTIVE, 1, resource, created)


def chosen(patient: PatientRow, seed: int) -> bool:
    if patient.superseded_by or patient.invalidated:
        return False
    if patient.nhs_number in ALWAYS:
        return True
    # a 64-bit multiplicative hash of the number and the seed: cheap (this runs for every seeded patient)
    mixed = ((int(patient.nhs_number) ^ (seed * 0x9E3779B1)) * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    return (mixed >> 32) % 1000 < RATE_PER_MILLE


def seed_rows(store: FlagStore, rows: Sequence[PatientRow], seed: int) -> int:
    """Write content for some of ``rows`` (one chunk of seeded patients); returns how many records were written."""
    codes = load_codes()
    with _gc_paused():  # the resources are acyclic; collections over the chunk's many dicts would dominate
        flags = [flag_for(p, seed, codes) for p in rows if chosen(p, seed)]
        return store.put_flags(flags) if flags else 0


@contextmanager
def _gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
