"""Fixtures for the card back-end tests: SoftHSM2 tokens (tests.support.softhsm) beside the pcscd fixtures that the
parent folder's conftest provides."""

from tests.support.softhsm import softhsm  # noqa: F401
