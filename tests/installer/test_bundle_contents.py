"""installer/spinedesk.spec collects the right files: every app/wes module, resources and the WES spec as data, the
Qt plugins a desktop client needs and none of the ones it does not (nor the GTK/Wayland libraries they pull in)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.installer.conftest import FOLDER, ROOT

pytestmark = [pytest.mark.installer, pytest.mark.slow]
INTERNAL = FOLDER / "_internal"
PLUGINS = INTERNAL / "PySide6" / "Qt" / "plugins"


@pytest.fixture(scope="module")
def folder(deb_package) -> Path:  # the .deb build leaves the PyInstaller folder in build/installer/dist
    assert (FOLDER / "spinedesk").is_file()
    return FOLDER


def _pyz_modules(executable: Path) -> set[str]:
    from PyInstaller.archive.readers import CArchiveReader

    archive = CArchiveReader(str(executable))
    return set(archive.open_embedded_archive("PYZ.pyz").toc)


def _source_modules(package: str) -> set[str]:
    names = set()
    for path in (ROOT / package).rglob("*.py"):
        if "__pycache__" in path.parts:
            continue
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names.add(".".join(parts))
    return names


def test_every_app_and_wes_module_and_the_server_stack_is_bundled(folder):
    modules = _pyz_modules(folder / "spinedesk")
    wanted = _source_modules("app") | _source_modules("wes")
    assert wanted - modules == set()
    for name in ("uvicorn.loops.uvloop", "uvicorn.protocols.http.httptools_impl", "uvicorn.lifespan.on",
                 "uvloop", "psycopg", "psycopg_pool", "smartcard.scard", "PySide6.QtWidgets", "httpx"):
        on_disk = INTERNAL / name.replace(".", "/")
        assert name in modules or on_disk.is_dir() or list(on_disk.parent.glob(on_disk.name + ".*.so")), name
    for unwanted in ("pytest", "hypothesis", "schemathesis", "tkinter", "pygments", "rich", "psycopg_binary"):
        assert not {m for m in modules if m == unwanted or m.startswith(unwanted + ".")}, unwanted


def test_resources_and_the_wes_spec_are_data(folder):
    for source in (ROOT / "resources").rglob("*"):
        if source.is_file():
            assert (INTERNAL / source.relative_to(ROOT)).is_file(), source
    for source in (ROOT / "wes" / "spec").iterdir():
        if source.suffix in (".toml", ".json"):
            assert (INTERNAL / "wes" / "spec" / source.name).is_file(), source
    assert (INTERNAL / "resources" / "rbac.json").is_file()


def test_only_the_needed_qt_plugins_are_kept(folder):
    kept = {str(p.relative_to(PLUGINS)) for p in PLUGINS.rglob("*.so")}
    for needed in ("platforms/libqxcb.so", "platforms/libqoffscreen.so",
                   "xcbglintegrations/libqxcb-glx-integration.so"):
        assert needed in kept
    dropped = ("platformthemes/", "wayland", "eglfs", "libqvnc", "libqlinuxfb", "libqvkkhrdisplay", "generic/",
               "tls/", "sqldrivers/", "qmltooling/", "networkinformation/", "egldeviceintegrations/", "designer/")
    assert [p for p in kept if any(d in p for d in dropped)] == []
    assert not (INTERNAL / "PySide6" / "Qt" / "translations").exists()


def test_no_gtk_wayland_or_system_copies_and_no_dangling_links(folder):
    names = [p.name for p in INTERNAL.rglob("*")]
    for lib in ("libgtk-3", "libgdk-3", "libcairo", "libpango", "libwayland", "libQt6WaylandClient",
                "libQt6EglFSDeviceIntegration", "libX11.so", "libxcb-cursor", "libssl.so", "libglib-2.0",
                "libfontconfig", "libpq"):
        assert not [n for n in names if n.startswith(lib)], lib
    dangling = [str(p) for p in FOLDER.rglob("*") if p.is_symlink() and not p.exists()]
    assert dangling == []
    packages = (FOLDER.parent / "spinedesk.system-packages").read_text().split()
    assert "libxcb-cursor0" in packages and "libfontconfig1" in packages
    assert not [p for p in packages if "gtk" in p or "wayland" in p or "vpcd" in p]


def test_binaries_are_stripped(folder):
    for path in (INTERNAL / "libpython3.11.so.1.0", folder / "spinedesk"):
        sections = subprocess.run(["readelf", "-S", "-W", str(path)], capture_output=True, text=True).stdout
        assert ".symtab" not in sections and ".debug_info" not in sections, path


def test_size_target(folder):
    total = sum(p.stat().st_size for p in FOLDER.rglob("*") if p.is_file() and not p.is_symlink())
    assert total <= 120_000_000, f"installed size {total / 1e6:.1f} MB is over the 120 MB target"


def test_deb_size_target(deb_package):
    size = os.path.getsize(deb_package)
    assert size <= 35 * 1024 * 1024, f".deb is {size / 1048576:.1f} MiB, over the 35 MiB target"
