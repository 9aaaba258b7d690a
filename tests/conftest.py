"""Shared test set-up. Qt runs offscreen unless a test starts a real display; data dirs never touch $HOME."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
