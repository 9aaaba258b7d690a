"""Dates the product carries in its own files, checked against the real clock on purpose.

Everything else in the suite is built from one clock (fixed dates build their certificates from the same date). These
tests are different: they are the dates written into the repository — the shipped WES specification's vendor
end-of-support dates and the NHS trust anchors' expiry — that will one day pass. Each one names its date and says what
to renew, so the day it matters CI fails with that message instead of an opaque assertion somewhere else.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from wes.spec import SPEC_DIR, available_versions, load_spec

pytestmark = pytest.mark.real_date  # left out of the clock-shifted runs: the real calendar is the point

# CI and the quick start run on Debian 12; the real-probe WES tests and the client's WES gate expect it supported.
CI_PLATFORM = ("linux", "debian", "12")


def today() -> date:
    return datetime.now(UTC).date()


def newest_spec_file() -> Path:
    return SPEC_DIR / f"{available_versions()[-1]}.toml"


def test_the_ci_operating_system_is_still_supported_by_the_shipped_spec() -> None:
    spec = load_spec()
    platform, distro, version = CI_PLATFORM
    entry = next(e for e in spec.os if (e.platform, e.distro, e.version) == (platform, distro, version))
    assert entry.end_of_support is not None
    warn = timedelta(days=spec.thresholds.os_end_of_support_warn_days)
    assert today() + warn < entry.end_of_support, (
        f"The shipped WES specification {spec.version} ({spec.file.name}) says {entry.name} is supported until "
        f"{entry.end_of_support} and warns {warn.days} days before; from {entry.end_of_support - warn} the real WES "
        f"check on this CI machine no longer passes. Renew: add a newer WES spec file in wes/spec/ with the "
        f"vendors' current dates, and move CI and the quick start to a supported Debian release.")


def test_every_listed_operating_system_date_is_checked_by_a_person_before_it_passes() -> None:
    """An end-of-support date inside the next 90 days is fine (the check warns), but a spec not reviewed for a
    year has dates nobody has looked at."""
    spec = load_spec()
    age = today() - spec.reviewed
    assert age <= timedelta(days=366), (
        f"The shipped WES specification {spec.version} was last reviewed on {spec.reviewed} ({age.days} days ago). "
        f"Renew: check its operating system, card and trust anchor entries against NHS England's current WES "
        f"({spec.source}) and the vendors' lifecycle pages, then set 'reviewed' in {spec.file.name} or add a newer "
        f"spec file.")


def test_the_nhs_trust_anchors_listed_as_current_have_not_expired() -> None:
    doc = tomllib.loads(newest_spec_file().read_text(encoding="utf-8"))
    for anchor in doc["anchors"]:
        if anchor.get("status") != "current" or "expires" not in anchor:
            continue
        expires = anchor["expires"]
        assert isinstance(expires, date)
        assert today() + timedelta(days=180) < expires, (
            f"{anchor['name']} ({anchor['id']}) in {newest_spec_file().name} expires on {expires}. Renew: list its "
            f"successor from pki.nhs.uk as 'current' (with its SHA-256 fingerprint) and mark this one 'retired' "
            f"before that date, or every card login in production will fail.")
