"""Pure formatting for clinical screens (NHS CUI patient banner rules, clinical-ui.md). No Qt here.

* names ``SMITH, Jane (Mrs)``; dates ``DD-Mmm-YYYY`` whatever the locale; times 24-hour ``HH:mm``;
* NHS numbers in 3-3-4 groups;
* ages with units that step down for the young (:func:`age_text`);
* missing values read "Unknown" / "Not recorded", never "?".
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from datetime import date, datetime, timedelta

from app.nhs_number import display

UNKNOWN = "Unknown"
NOT_RECORDED = "Not recorded"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_GENDERS = {"male": "Male", "female": "Female", "other": "Other", "unknown": "Unknown"}


def format_date(value: date | datetime | None) -> str:
    """``07-Mar-1970``: English month abbreviations whatever the locale (CUI), "Unknown" when missing."""
    if value is None:
        return UNKNOWN
    return f"{value.day:02d}-{_MONTHS[value.month - 1]}-{value.year:04d}"


def format_time(value: datetime) -> str:
    """24-hour ``HH:mm``, in this computer's time zone when ``value`` carries one."""
    if value.tzinfo is not None:
        value = value.astimezone()
    return f"{value.hour:02d}:{value.minute:02d}"


def format_nhs_number(value: str | None) -> str:
    """``943 476 5919`` (3-3-4, single spaces); anything that is not ten digits is shown as it is."""
    return display(value) if value else UNKNOWN


def format_name(family: str | None, given: Sequence[str] = (), prefix: Sequence[str] = ()) -> str:
    """``SMITH, Jane Anne (Mrs)``: family name in capitals, comma, given names, title in brackets; never cut."""
    family_text = (family or "").strip().upper()
    given_text = " ".join(g.strip() for g in given if g and g.strip())
    title = " ".join(p.strip() for p in prefix if p and p.strip())
    if not family_text and not given_text:
        return UNKNOWN
    text = family_text or UNKNOWN.upper()
    if given_text:
        text += f", {given_text}"
    if title:
        text += f" ({title})"
    return text


def format_gender(value: str | None) -> str:
    return _GENDERS.get((value or "").lower(), UNKNOWN if not value else value.title())


# --- ages ---------------------------------------------------------------------------------------------------


def _add_months(start: date, months: int) -> date:
    """``start`` moved on by whole calendar months (the 31st becomes the month's last day when needed)."""
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


def _whole_months(born: date, on: date) -> int:
    months = (on.year - born.year) * 12 + (on.month - born.month)
    if _add_months(born, months) > on:
        months -= 1
    return max(months, 0)


def _as_datetime(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime(value.year, value.month, value.day)


def age_text(born: date | datetime, on: date | datetime) -> str:
    """A patient's age on ``on`` with the CUI's stepped units (no brackets; the banner adds them).

    * under 2 hours: minutes (``45min``) — needs a birth time; with only a birth date the youngest unit is days;
    * under 2 days: hours (``36h``);
    * under 4 weeks: days (``12d``);
    * under 1 year: weeks and days (``10w 3d``; ``10w`` when the days are 0);
    * under 2 years: months and days (``14m 5d``);
    * under 18 years: years and months (``4y 1m``; ``4y`` when the months are 0);
    * otherwise years (``61y``).

    Naive and aware datetimes must not be mixed. A birth after ``on`` (bad data) reads "Unknown".
    """
    timed = isinstance(born, datetime) and isinstance(on, datetime)
    start, end = _as_datetime(born), _as_datetime(on)
    if end < start:
        return UNKNOWN
    elapsed = end - start
    if timed and elapsed < timedelta(hours=2):
        return f"{int(elapsed.total_seconds() // 60)}min"
    if timed and elapsed < timedelta(days=2):
        return f"{int(elapsed.total_seconds() // 3600)}h"
    born_day, on_day = start.date(), end.date()
    days = (on_day - born_day).days
    if days < 28:
        return f"{days}d"
    months = _whole_months(born_day, on_day)
    if months < 12:
        weeks, rest = divmod(days, 7)
        return f"{weeks}w {rest}d" if rest else f"{weeks}w"
    if months < 24:
        rest = (on_day - _add_months(born_day, months)).days
        return f"{months}m {rest}d" if rest else f"{months}m"
    years, rest_months = divmod(months, 12)
    if years < 18:
        return f"{years}y {rest_months}m" if rest_months else f"{years}y"
    return f"{years}y"


def elide_one_line(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis (for the banner's one-line address only)."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)].rstrip() + "…"
