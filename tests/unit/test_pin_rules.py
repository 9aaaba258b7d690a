"""The rules a new smartcard PIN must meet (NHS: 6 to 8 numbers, not easy to guess), each refused with its reason."""

from __future__ import annotations

import pytest

from app.card.pin_rules import check_new_pin as card_layer_rules
from app.errors import InvalidPinFormat
from app.pin_rules import check_new_pin


@pytest.mark.parametrize("pin", ["240719", "5082917", "73920418", "020304", "135790"])
def test_good_pins_pass(pin):
    check_new_pin(pin, pin, old="11223344")


@pytest.mark.parametrize(("new", "reason"), [
    ("24071", "too short"),
    ("", "numbers only"),
    ("240719011", "too long"),
    ("24o719", "numbers only"),
    ("2407 19", "numbers only"),
    ("\uff12\uff14\uff10\uff17\uff11\uff19", "numbers only"),  # full-width digits are not what a card keypad sends
    ("111111", "one number repeated"),
    ("123456", "counting up or down"),
    ("87654321", "counting up or down"),
    ("890123", "counting up or down"),
])
def test_bad_pins_name_the_rule(new, reason):
    with pytest.raises(InvalidPinFormat, match=reason) as caught:
        check_new_pin(new, new)
    if new:
        assert new not in str(caught.value)  # the message names the rule, never the PIN


def test_the_new_pin_differs_from_the_old_one():
    with pytest.raises(InvalidPinFormat, match="differ from the current"):
        check_new_pin("240719", "240719", old="240719")


def test_the_repeat_must_match():
    with pytest.raises(InvalidPinFormat, match="repeat differ"):
        check_new_pin("240719", "240718")


def test_the_card_layer_applies_the_same_rules():
    assert card_layer_rules is check_new_pin
