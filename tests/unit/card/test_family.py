"""Card families from the ATR (where a public source gives it) and from a PKCS#11 token's manufacturer and model."""

from __future__ import annotations

from datetime import date

import pytest

from app.card.backend import CardFamily
from app.card.family import NHS_ATRS, blocked_by_nhs, recognise
from wes.spec import load_spec

TRAINING_ATR = bytes.fromhex("3B 8C 01 80 5A 53 50 49 4E 45 2D 44 45 53 4B 22")
YUBIKEY_5_ATR = bytes.fromhex("3B FD 13 00 00 81 31 FE 15 80 73 C0 21 C0 57 59 75 62 69 4B 65 79 40")


@pytest.mark.parametrize(("atr", "family"), [
    # pcsc-tools smartcard_list.txt: "NHS hospital smartcard login key" (JCOP41 V2.2.1)
    ("3B 6A 00 FF 4A 43 4F 50 34 31 56 32 32 31", CardFamily.SERIES_4_6),
    # pcsc-tools smartcard_list.txt: "NHS Care Identity Service (CIS) smartcard" (JCOP41 V2.2.1)
    ("3B F9 18 00 00 81 31 FE 45 4A 43 4F 50 34 31 56 32 32 AF", CardFamily.SERIES_4_6),
    ("3B 8C 01 80 5A 53 50 49 4E 45 2D 44 45 53 4B 22", CardFamily.TRAINING),
])
def test_family_by_atr(atr, family):
    assert recognise(bytes.fromhex(atr)) is family
    assert recognise(bytes.fromhex(atr), piv=True, manufacturer="IDEMIA") is family  # a sourced ATR decides


@pytest.mark.parametrize(("manufacturer", "model", "family"), [
    ("Oberthur Technologies", None, CardFamily.SERIES_8),
    ("OBERTHUR TECHNOLOGIES", "ID-One Cosmo", CardFamily.SERIES_8),
    ("IDEMIA", None, CardFamily.SERIES_9),
    ("IDEMIA", "NHS Series 10 PIV", CardFamily.SERIES_10),
    ("IDEMIA", "series 9", CardFamily.SERIES_9),
    ("Gemplus", "Series 4", CardFamily.SERIES_4_6),
    ("Yubico (www.yubico.com)", "YubiKey YK5", CardFamily.UNKNOWN),
    (None, None, CardFamily.UNKNOWN),
])
def test_family_by_token_manufacturer_and_model(manufacturer, model, family):
    assert recognise(b"", manufacturer=manufacturer, model=model) is family


def test_a_piv_card_of_no_nhs_family_is_generic_piv():
    assert recognise(YUBIKEY_5_ATR, piv=True) is CardFamily.PIV
    assert recognise(YUBIKEY_5_ATR) is CardFamily.UNKNOWN


def test_only_series_4_to_6_are_blocked_by_nhs_from_7_may_2026():
    assert [f for f in CardFamily if blocked_by_nhs(f, date(2026, 5, 7))] == [CardFamily.SERIES_4_6]
    assert blocked_by_nhs(CardFamily.SERIES_4_6, date(2027, 1, 1)) == date(2026, 5, 7)
    assert blocked_by_nhs(CardFamily.SERIES_4_6, date(2026, 5, 6)) is None


def test_the_wes_spec_lists_every_nhs_atr_with_its_family_and_source():
    spec = load_spec()
    listed = {f.atr: f for f in spec.card_families}
    for atr, family, _source in NHS_ATRS:
        entry = listed[atr.hex(" ").upper()]
        assert entry.family == family.value and entry.source and entry.read_on is not None
        assert not entry.training_only
    training = [f for f in spec.card_families if f.training_only]
    assert [f.family for f in training] == [CardFamily.TRAINING.value]
