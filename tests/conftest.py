"""Shared test set-up. Qt runs offscreen unless a test starts a real display; data dirs never touch $HOME."""

from __future__ import annotations

import os
import shutil
import tempfile

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

_HOME = tempfile.mkdtemp(prefix="spinedesk-tests-")


def pytest_configure(config):
    # Every platformdirs path (data, config, logs) lands in a throwaway tree, for this process and the
    # command-line subprocesses the tests start; no site configuration unless a test writes one.
    for var, sub in (("XDG_DATA_HOME", "data"), ("XDG_CONFIG_HOME", "config"), ("XDG_STATE_HOME", "state"),
                     ("XDG_CACHE_HOME", "cache")):
        os.environ[var] = os.path.join(_HOME, sub)
    os.environ["SPINEDESK_SITE_CONFIG"] = os.path.join(_HOME, "no-site-config.toml")


def pytest_unconfigure(config):
    shutil.rmtree(_HOME, ignore_errors=True)
