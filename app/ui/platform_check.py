"""Qt's half of ``spinedesk --self-test``: the platform plugin loads, fonts are found, the windowing plugin's libraries
resolve. Kept here because ``app.ui`` is the only package that imports PySide6; ``app.cli.selftest`` calls it."""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

# The plugin a real window needs on each system, and (Linux) its GL integration: each must be in the build and its
# shared libraries must resolve on this machine (a missing libxcb-cursor0 shows up here, not at the user's first run).
WINDOW_PLUGINS = {"linux": ("platforms/libqxcb.so", "xcbglintegrations/libqxcb-glx-integration.so"),
                  "win32": ("platforms/qwindows.dll",), "darwin": ("platforms/libqcocoa.dylib",)}


def _plugins_dir() -> Path:
    from PySide6.QtCore import QLibraryInfo

    return Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath))


def check_window_plugins() -> str:
    """Every windowing plugin is bundled and loadable (dlopen resolves all its libraries); raises otherwise."""
    plugins = _plugins_dir()
    wanted = WINDOW_PLUGINS.get(sys.platform if sys.platform in WINDOW_PLUGINS else "linux", ())
    for rel in wanted:
        path = plugins / rel
        if not path.is_file():
            raise RuntimeError(f"Qt plugin {rel} is not in this build ({plugins})")
        try:
            ctypes.CDLL(str(path))
        except OSError as exc:  # the message names the library the system lacks
            raise RuntimeError(f"Qt plugin {rel} cannot load: {exc}") from exc
    return ", ".join(Path(rel).name for rel in wanted)


def check_offscreen_render() -> str:
    """Start Qt on the offscreen platform, find fonts and draw a label; returns a one-line summary."""
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtGui import QFontDatabase, QGuiApplication
    from PySide6.QtWidgets import QApplication, QLabel

    app = QApplication.instance() or QApplication(["spinedesk", "-platform", "offscreen"])
    platform = QGuiApplication.platformName()
    if platform != "offscreen":
        raise RuntimeError(f"Qt started the {platform!r} platform plugin instead of 'offscreen'")
    families = QFontDatabase.families()
    if not families:  # without fontconfig's configuration every glyph is an empty box
        raise RuntimeError("Qt finds no fonts (is fontconfig configured and a font such as fonts-dejavu-core "
                           "installed?)")
    label = QLabel("Spine Desk self-test")
    label.adjustSize()
    image = label.grab().toImage()
    if image.isNull() or image.width() < 10:
        raise RuntimeError("Qt could not draw a widget offscreen")
    from PySide6 import __version__ as pyside_version

    del app
    return f"Qt {pyside_version}, platform {platform}, {len(families)} font families"
