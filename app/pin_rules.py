"""The rules a new smartcard PIN (NHS: "passcode") must meet, checked before anything reaches the card.

NHS England's rule since 19 July 2023: a smartcard passcode is 6 to 8 numbers, no letters, not easy to guess
(sources in docs/user.md). The PIV card edge takes the same 6 to 8 digits. Spine Desk reads "not easy to guess" as
two checks a card cannot make: not one digit repeated (``111111``) and not a straight run up or down (``123456``,
``87654321``). A new PIN must also differ from the old one and be typed the same twice.

Shared by the card layer, the client's self-service use cases and the command line (neither imports the other).
The messages name the rule only, never the PIN.
"""

from __future__ import annotations

import itertools

from app.errors import InvalidPinFormat

MIN_LENGTH = 6
MAX_LENGTH = 8


def check_new_pin(new: str, repeat: str, old: str | None = None) -> None:
    """Raise :class:`InvalidPinFormat` naming the first rule ``new`` breaks, or that ``repeat`` differs."""
    if not new.isascii() or not new.isdigit():
        raise InvalidPinFormat("a new PIN has numbers only (0-9), no letters, spaces or other characters")
    if len(new) < MIN_LENGTH:
        raise InvalidPinFormat(f"a new PIN is too short: it needs {MIN_LENGTH} to {MAX_LENGTH} numbers")
    if len(new) > MAX_LENGTH:
        raise InvalidPinFormat(f"a new PIN is too long: it needs {MIN_LENGTH} to {MAX_LENGTH} numbers")
    if len(set(new)) == 1:
        raise InvalidPinFormat("a new PIN may not be one number repeated, it would be easy to guess")
    steps = {(int(b) - int(a)) % 10 for a, b in itertools.pairwise(new)}
    if steps in ({1}, {9}):
        raise InvalidPinFormat("a new PIN may not be a run of numbers counting up or down, it would be easy to guess")
    if old is not None and new == old:
        raise InvalidPinFormat("the new PIN must differ from the current one")
    if new != repeat:
        raise InvalidPinFormat("the new PIN and its repeat differ")
