"""Banner formatting and the CUI age rules (pure functions, no Qt)."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

import pytest

from app.client.pds_models import parse_patient
from app.ui.banner import banner_fields
from app.ui.format import (
    age_text,
    elide_one_line,
    format_date,
    format_gender,
    format_name,
    format_nhs_number,
    format_time,
)


@pytest.mark.parametrize(("born", "on", "expected"), [
    # under 2 hours: minutes (needs a birth time)
    (datetime(2026, 3, 1, 10, 0), datetime(2026, 3, 1, 10, 0), "0min"),
    (datetime(2026, 3, 1, 10, 0), datetime(2026, 3, 1, 10, 45), "45min"),
    (datetime(2026, 3, 1, 10, 0), datetime(2026, 3, 1, 11, 59), "119min"),
    # 2 hours to under 2 days: hours
    (datetime(2026, 3, 1, 10, 0), datetime(2026, 3, 1, 12, 0), "2h"),
    (datetime(2026, 3, 1, 10, 0), datetime(2026, 3, 2, 22, 0), "36h"),
    (datetime(2026, 3, 1, 10, 0), datetime(2026, 3, 3, 9, 59), "47h"),
    # with only dates, days are the smallest unit
    (date(2026, 3, 1), date(2026, 3, 1), "0d"),
    (date(2026, 3, 1), date(2026, 3, 2), "1d"),
    (datetime(2026, 3, 1, 10, 0), datetime(2026, 3, 3, 10, 0), "2d"),
    # under 4 weeks: days
    (date(2026, 3, 1), date(2026, 3, 13), "12d"),
    (date(2026, 3, 1), date(2026, 3, 28), "27d"),
    # 4 weeks to under 1 year: weeks and days
    (date(2026, 3, 1), date(2026, 3, 29), "4w"),
    (date(2026, 3, 1), date(2026, 5, 13), "10w 3d"),
    (date(2025, 3, 2), date(2026, 3, 1), "52w"),
    (date(2023, 3, 1), date(2024, 2, 29), "52w 1d"),
    # 1 year to under 2 years: months and days
    (date(2025, 3, 1), date(2026, 3, 1), "12m"),
    (date(2024, 12, 27), date(2026, 3, 4), "14m 5d"),
    (date(2024, 3, 2), date(2026, 3, 1), "23m 27d"),
    # 2 years to under 18 years: years and months
    (date(2024, 3, 1), date(2026, 3, 1), "2y"),
    (date(2022, 1, 15), date(2026, 2, 20), "4y 1m"),
    (date(2008, 3, 2), date(2026, 3, 1), "17y 11m"),
    # 18 and over: years
    (date(2008, 3, 1), date(2026, 3, 1), "18y"),
    (date(1964, 9, 30), date(2026, 3, 1), "61y"),
    (date(1925, 1, 1), date(2026, 3, 1), "101y"),
])
def test_age_steps_down_for_the_young(born, on, expected):
    assert age_text(born, on) == expected


def test_birthdays_on_29_february_and_month_ends():
    # a 29 February birthday falls on 28 February in other years (months are clamped to their last day)
    assert age_text(date(2024, 2, 29), date(2026, 2, 27)) == "23m 29d"
    assert age_text(date(2024, 2, 29), date(2026, 2, 28)) == "2y"
    assert age_text(date(2008, 2, 29), date(2026, 2, 27)) == "17y 11m"
    assert age_text(date(2008, 2, 29), date(2026, 2, 28)) == "18y"
    assert age_text(date(2025, 1, 31), date(2026, 2, 28)) == "13m"  # the 31st falls on a shorter month's end


def test_age_never_goes_negative_on_bad_data():
    assert age_text(date(2030, 1, 1), date(2026, 1, 1)) == "Unknown"


def test_every_day_for_three_years_has_one_well_formed_age():
    shapes = re.compile(r"\d+d|\d+w( [1-6]d)?|(1[2-9]|2[0-3])m( ([1-9]|[12]\d|3[01])d)?"
                        r"|([2-9]|1[0-7])y( ([1-9]|1[01])m)?")
    born = date(2023, 1, 31)
    for n in range(3 * 366):
        text = age_text(born, born + timedelta(days=n))
        assert shapes.fullmatch(text), (n, text)


def test_dates_names_and_numbers():
    assert format_date(date(1970, 3, 7)) == "07-Mar-1970"
    assert format_date(None) == "Unknown"
    assert format_time(datetime(2026, 1, 1, 7, 5)) == "07:05"
    assert format_name("Smith", ["Jane"], ["Mrs"]) == "SMITH, Jane (Mrs)"
    assert format_name("O'Brien-Jones", ["Mary", "Anne"], []) == "O'BRIEN-JONES, Mary Anne"
    assert format_name("Ng", [], ["Dr"]) == "NG (Dr)"
    assert format_name(None, [], []) == "Unknown"
    assert format_nhs_number("9434765919") == "943 476 5919"
    assert format_nhs_number("943 476 5919") == "943 476 5919"
    assert format_nhs_number("") == "Unknown"
    assert format_gender("female") == "Female" and format_gender(None) == "Unknown"
    assert elide_one_line("a" * 10, 5) == "aaaa…" and elide_one_line("abc", 5) == "abc"


def _patient(**over):
    doc = {"resourceType": "Patient", "id": "9434765919", "meta": {"versionId": "3", "security": [{"code": "U"}]},
           "name": [{"use": "usual", "family": "Smith", "given": ["Jane"], "prefix": ["Mrs"]}],
           "gender": "female", "birthDate": "1964-09-30"}
    doc.update(over)
    return parse_patient(doc, today=date(2026, 3, 1))


def test_banner_fields_living_adult():
    fields = banner_fields(_patient(), date(2026, 3, 1))
    assert (fields["name"], fields["born"], fields["age"], fields["gender"], fields["nhs"]) == (
        "SMITH, Jane (Mrs)", "30-Sep-1964", "(61y)", "Female", "943 476 5919")
    assert fields["died"] == "" and fields["age_at_death"] == ""


def test_banner_fields_child_and_deceased():
    child = banner_fields(_patient(birthDate="2022-01-15"), date(2026, 2, 20))
    assert child["age"] == "(4y 1m)"
    dead = banner_fields(_patient(deceasedDateTime="2020-05-01T10:00:00+00:00"), date(2026, 3, 1))
    assert dead["died"] == "01-May-2020" and dead["age_at_death"] == "55y" and dead["age"] == ""


def test_banner_fields_preferred_name_and_missing_values():
    fields = banner_fields(_patient(name=[{"use": "usual", "family": "Smith", "given": ["Jane"]},
                                          {"use": "nickname", "family": "Smith", "given": ["Janey"]}],
                                    birthDate=None, gender=None), date(2026, 3, 1))
    assert fields["preferred"] == "Preferred name Janey"
    assert fields["born"] == "Unknown" and fields["age"] == "" and fields["gender"] == "Unknown"
