"""Fixtures for this folder (PostgreSQL/SQLite store fixtures).

They live in tests.support.service.fixtures, shared with other folders; a conftest.py re-exports them
(pytest reads ``pytest_plugins`` only in the root conftest)."""

from tests.support.service.fixtures import *  # noqa: F403
