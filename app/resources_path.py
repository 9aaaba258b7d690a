"""The one place that knows where Spine Desk's data files live, in a source tree and in a frozen build.

Source tree or wheel: ``resources/`` beside the ``app`` package. PyInstaller build: ``sys._MEIPASS`` (the
``_internal`` folder of the one-folder build), where ``installer/spinedesk.spec`` puts ``resources/`` and the
packages' own data (``wes/spec/…``) at the same relative paths.
"""

from __future__ import annotations

import sys
from pathlib import Path


def bundle_root() -> Path:
    """The folder holding ``resources/`` and the ``app`` / ``wes`` package data."""
    frozen = getattr(sys, "_MEIPASS", None)
    return Path(frozen) if frozen else Path(__file__).resolve().parent.parent


def resource(*parts: str) -> Path:
    """``resource("rbac.json")`` → ``<bundle root>/resources/rbac.json`` (not checked for existence)."""
    return bundle_root().joinpath("resources", *parts)
