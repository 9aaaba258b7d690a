"""Fixtures for this folder (Xvfb, pcscd, the real service, windows).

They live in tests.support.ui.fixtures, shared with other folders; a conftest.py re-exports them
(pytest reads ``pytest_plugins`` only in the root conftest)."""

from tests.support.ui.fixtures import *  # noqa: F403
