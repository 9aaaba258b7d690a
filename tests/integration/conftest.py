"""Fixtures for this folder (pcscd and virtual-card fixtures).

They live in tests.support.pcscd, shared with other folders; a conftest.py re-exports them
(pytest reads ``pytest_plugins`` only in the root conftest)."""

from tests.support.pcscd import *  # noqa: F403
