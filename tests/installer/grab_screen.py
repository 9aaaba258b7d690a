"""Save a screenshot of an X display once something is drawn on it and it has stopped changing.

    python tests/installer/grab_screen.py DISPLAY OUT.png [--timeout S] [--settle S]

Runs on the host (the project venv's PySide6, xcb platform) against an Xvfb the test started; the window shown
belongs to a process inside the chroot. Exit 0 with the PNG written, 1 when the screen stayed blank.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("display")
    parser.add_argument("out")
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--settle", type=float, default=3)
    args = parser.parse_args()
    os.environ["DISPLAY"] = args.display
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    from PySide6.QtGui import QGuiApplication, QImage

    app = QGuiApplication(["grab_screen"])
    screen = app.primaryScreen()
    deadline = time.monotonic() + args.timeout
    previous: QImage | None = None
    stable_since = None
    while time.monotonic() < deadline:
        app.processEvents()
        image = screen.grabWindow(0).toImage()
        blank = image.isNull() or len({image.pixel(x, y) for x in range(0, image.width(), 37)
                                       for y in range(0, image.height(), 37)}) <= 1
        if not blank and previous is not None and image == previous:
            stable_since = stable_since or time.monotonic()
            if time.monotonic() - stable_since >= args.settle:
                return 0 if image.save(args.out) else 1
        else:
            stable_since = None
        previous = None if blank else image
        time.sleep(0.5)
    if previous is not None:  # drawn but never still for long enough (a spinner): keep the last frame
        return 0 if previous.save(args.out) else 1
    print("grab_screen: nothing was drawn on the display", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
