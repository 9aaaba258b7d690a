"""Fixtures for this folder (an offscreen QApplication, this package only).

They live in tests.support.qt, shared with other folders; a conftest.py re-exports them
(pytest reads ``pytest_plugins`` only in the root conftest)."""

from tests.support.qt import *  # noqa: F403
