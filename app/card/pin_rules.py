"""The rules for a new smartcard PIN, as the card layer sees them (one definition: :mod:`app.pin_rules`)."""

from __future__ import annotations

from app.pin_rules import MAX_LENGTH, MIN_LENGTH, check_new_pin

__all__ = ["MAX_LENGTH", "MIN_LENGTH", "check_new_pin"]
