"""A hostile PKCS#11 token (SoftHSM2, a real module) whose label carries terminal control characters: the label
reaches the user's terminal and the log only escaped, in errors (no login certificate, several cards) too."""

from __future__ import annotations

import logging

import pytest

from app.card.pkcs11 import Pkcs11Backend
from app.error_text import user_text
from app.errors import NoLoginCertificate, SeveralCards

HOSTILE = "Ada\x1b[2J\rroot\nFORGED\x07"  # clears the screen, rewrites the line, forges a log line, rings


def _clean(text: str) -> bool:
    return all(ch.isprintable() for ch in text)


def test_a_label_with_control_characters_is_escaped_in_the_error_and_the_log(softhsm, caplog):
    softhsm.make_card(HOSTILE, "p256", with_certificate=False, distractor=False)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(NoLoginCertificate) as missing:
        Pkcs11Backend(softhsm.module).open(None)
    text = user_text(missing.value)
    assert _clean(text) and "Ada\\x1b[2J\\x0droot\\x0aFORGED\\x07" in text, text
    assert _clean(str(missing.value))
    assert all(_clean(record.getMessage()) for record in caplog.records)


def test_several_hostile_tokens_are_named_escaped(softhsm):
    softhsm.make_card(HOSTILE, "p256")
    softhsm.make_card("Second\x1b]0;title\x07", "p256")
    with pytest.raises(SeveralCards) as several:
        Pkcs11Backend(softhsm.module).open(None)
    assert _clean(user_text(several.value)), user_text(several.value)
