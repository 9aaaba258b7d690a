"""Render ``resources/icons/spinedesk.svg`` to the PNG sizes (and Windows .ico) the installers need.

    python installer/render_icon.py OUT_DIR [--sizes 16 32 48 128 256] [--ico]

Build-time only (uses PySide6's QtSvg from the build venv, offscreen). Writes ``OUT_DIR/spinedesk-<N>.png`` and,
with ``--ico``, ``OUT_DIR/spinedesk.ico`` (16-256 px, through Qt's ICO writer).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

SVG = Path(__file__).resolve().parent.parent / "resources" / "icons" / "spinedesk.svg"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 48, 64, 128, 256])
    parser.add_argument("--ico", action="store_true", help="also write spinedesk.ico")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    app = QGuiApplication(["render_icon"])
    renderer = QSvgRenderer(str(SVG))
    if not renderer.isValid():
        print(f"render_icon: {SVG} is not a valid SVG", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    largest = None
    for size in args.sizes:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        renderer.render(painter)
        painter.end()
        if not image.save(str(args.out / f"spinedesk-{size}.png")):
            print(f"render_icon: cannot write spinedesk-{size}.png", file=sys.stderr)
            return 1
        largest = image
    if args.ico and (largest is None or not largest.save(str(args.out / "spinedesk.ico"), "ICO")):
        print("render_icon: cannot write spinedesk.ico (Qt's ICO image plugin is needed)", file=sys.stderr)
        return 1
    del app
    return 0


if __name__ == "__main__":
    sys.exit(main())
