"""Fixtures for this folder (fake probes, settings, pcscd).

They live in tests.support.wes.harness, shared with other folders; a conftest.py re-exports them
(pytest reads ``pytest_plugins`` only in the root conftest)."""

from tests.support.wes.harness import *  # noqa: F403
