"""What can be checked here of the installers for all three systems: files parse, scripts pass ``bash -n``, the
configuration template is a valid site configuration on each system, the desktop entry validates, the spec compiles,
and ``--self-test`` reports failures the way the frozen build's CI relies on."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from app.cli import selftest
from app.config import Mode, Paths, RemovalMode, parse_site_config

ROOT = Path(__file__).resolve().parents[2]
INSTALLER = ROOT / "installer"
WIX = "{http://wixtoolset.org/schemas/v4/wxs}"
SITE_DIRS = {"linux": ("/etc/xdg/SpineDesk", "/"), "windows": ("C:\\ProgramData\\SpineDesk", "\\"),
             "macos": ("/Library/Application Support/SpineDesk", "/")}


def _template(system: str) -> str:
    site, sep = SITE_DIRS[system]
    text = (INSTALLER / "config" / "spinedesk.toml.in").read_text(encoding="utf-8")
    return text.replace("@SITE_DIR@", site).replace("@SEP@", sep)


@pytest.mark.parametrize("system", sorted(SITE_DIRS))
def test_config_template_is_a_valid_production_site_config(system, tmp_path):
    site, sep = SITE_DIRS[system]
    paths = Paths(tmp_path, tmp_path, tmp_path, tmp_path / "spinedesk.toml")
    settings = parse_site_config(_template(system), Path("spinedesk.toml"), paths)
    assert settings.mode is Mode.PRODUCTION and not settings.training
    assert settings.service_url == "https://spine.example.nhs.uk"
    assert settings.card_removal is RemovalMode.LOCK
    assert str(settings.trust_anchors[0]).endswith("nhs-root-g2.pem") and site in str(settings.trust_anchors[0])
    assert settings.service_ca is not None and f"{site}{sep}service-ca.pem" == str(settings.service_ca)
    assert settings.wes_spec_version


def test_config_template_names_a_shipped_wes_spec():
    spec = pytest.importorskip("wes.spec")
    settings = parse_site_config(_template("linux"), Path("x.toml"), Paths(ROOT, ROOT, ROOT, ROOT / "x.toml"))
    assert settings.wes_spec_version in spec.available_versions()


def test_shell_scripts_parse():
    scripts = [INSTALLER / "build_deb.sh", INSTALLER / "windows" / "build_msi.sh",
               INSTALLER / "windows" / "test_msi.sh", INSTALLER / "macos" / "build_pkg.sh",
               INSTALLER / "macos" / "test_pkg.sh"]
    posix = [INSTALLER / "linux" / "postrm", INSTALLER / "macos" / "uninstall.sh",
             INSTALLER / "macos" / "scripts" / "postinstall"]
    for script in scripts:
        result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, f"{script}: {result.stderr}"
    for script in posix:
        result = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, f"{script}: {result.stderr}"
        assert script.read_text().startswith("#!/bin/sh")
    for script in [*scripts, *posix]:
        assert script.stat().st_mode & 0o111, f"{script} is not executable"


def test_wix_source_is_a_per_machine_package_with_the_site_config_dir():
    tree = ET.parse(INSTALLER / "windows" / "spinedesk.wxs")
    package = tree.getroot().find(f"{WIX}Package")
    assert package is not None and package.get("Scope") == "perMachine"
    assert package.get("UpgradeCode") and package.find(f"{WIX}MajorUpgrade") is not None
    dirs = {d.get("Id"): d for d in package.iter(f"{WIX}StandardDirectory")}
    site = dirs["CommonAppDataFolder"].find(f"{WIX}Directory")
    assert site is not None and site.get("Name") == "SpineDesk"  # %ProgramData%\SpineDesk, platformdirs' site dir
    files = {f.get("Name") for f in package.iter(f"{WIX}File")}
    assert "spinedesk.toml.example" in files
    assert any(f.get("Include", "").endswith("\\**") for f in package.iter(f"{WIX}Files"))
    copies = {c.get("SourceName") for c in package.iter(f"{WIX}CopyFile")}
    assert "spinedesk.toml" in copies


def test_macos_distribution_and_payload_layout():
    root = ET.parse(INSTALLER / "macos" / "distribution.xml").getroot()
    assert root.tag == "installer-gui-script"
    assert root.find("pkg-ref").text == "spinedesk-component.pkg"
    build = (INSTALLER / "macos" / "build_pkg.sh").read_text()
    assert "Library/Application Support/SpineDesk/spinedesk.toml.example" in build
    assert "pkgbuild" in build and "productbuild" in build


def test_desktop_entry_and_icon():
    desktop = INSTALLER / "linux" / "spinedesk.desktop"
    text = desktop.read_text()
    assert "Exec=spinedesk\n" in text and "Icon=spinedesk\n" in text
    ET.parse(ROOT / "resources" / "icons" / "spinedesk.svg")
    validate = shutil.which("desktop-file-validate")
    if validate is None:
        pytest.skip("desktop-file-utils is not installed (scripts/setup.sh test installs it)")
    result = subprocess.run([validate, str(desktop)], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def test_deb_never_depends_on_the_virtual_reader():
    build = (INSTALLER / "build_deb.sh").read_text()
    depends = [line for line in build.splitlines() if line.startswith(("depends=", "recommends="))]
    assert any("pcscd" in line for line in depends)
    assert not any("vsmartcard" in line or "vpcd" in line for line in depends)


def test_pyinstaller_spec_and_entry_compile():
    for path in (INSTALLER / "spinedesk.spec", INSTALLER / "entry.py", INSTALLER / "render_icon.py"):
        compile(path.read_text(encoding="utf-8"), str(path), "exec")


def test_github_workflow_runs_every_installer():
    jobs = yaml.safe_load((ROOT / ".github" / "workflows" / "installers.yml").read_text())["jobs"]
    steps = {name: " ".join(str(s.get("run", "")) for s in job["steps"]) for name, job in jobs.items()}
    assert "tests/installer" in steps["debian"]
    assert "build_msi.sh" in steps["windows"] and "test_msi.sh" in steps["windows"]
    assert "build_pkg.sh" in steps["macos"] and "test_pkg.sh" in steps["macos"]


def test_self_test_reports_each_failure_and_exits_non_zero(monkeypatch):
    def broken() -> str:
        raise FileNotFoundError("resources/rbac.json")

    def optional() -> str:
        raise selftest.Note("PostgreSQL stores unavailable")

    monkeypatch.setattr(selftest, "CHECKS", (("fine", lambda: "all good"), ("bundle", broken), ("pg", optional)))
    out = io.StringIO()
    assert selftest.run_checks(out) == 1
    lines = out.getvalue().splitlines()
    assert lines[0] == "ok    fine: all good"
    assert lines[1] == "FAIL  bundle: FileNotFoundError: resources/rbac.json"
    assert lines[2] == "note  pg: PostgreSQL stores unavailable"
    assert lines[-1] == "self-test FAILED: bundle"
    monkeypatch.setattr(selftest, "CHECKS", (("fine", lambda: "all good"),))
    assert selftest.run_checks(io.StringIO()) == 0


def test_self_test_passes_from_the_source_tree():
    result = subprocess.run([sys.executable, "-m", "app", "--self-test"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "self-test passed" in result.stdout


def _sddl_aces(sddl: str) -> tuple[str, str, list[tuple[str, ...]]]:
    """(owner, DACL flags, ACEs as (type, flags, rights, object, inherited object, trustee)) of an SDDL string."""
    owner = re.search(r"O:([A-Z]{2}|S-[0-9-]+)", sddl)
    dacl = re.search(r"D:([A-Z]*)((?:\([^)]*\))*)", sddl)
    assert owner and dacl, sddl
    aces = [tuple(ace.split(";")) for ace in re.findall(r"\(([^)]*)\)", dacl.group(2))]
    return owner.group(1), dacl.group(1), aces


READ_EXECUTE = {"0x1200a9", "GRGX", "GXGR", "FRFX", "FXFR"}  # FILE_GENERIC_READ | FILE_GENERIC_EXECUTE


def test_wix_source_locks_the_site_config_dir_to_administrators_and_system():
    """%ProgramData%\\SpineDesk holds spinedesk.toml and wes-waivers.toml: its inherited ACL lets ordinary users
    create files there, so the package sets its own (protected: nothing inherited from ProgramData)."""
    package = ET.parse(INSTALLER / "windows" / "spinedesk.wxs").getroot().find(f"{WIX}Package")
    site = [c for c in package.iter(f"{WIX}Component") if c.get("Directory") == "SITECONFIGDIR"]
    locked = [(c, f) for c in site for f in c.iter(f"{WIX}CreateFolder") if f.find(f"{WIX}PermissionEx") is not None]
    assert len(locked) == 1, "exactly one CreateFolder of SITECONFIGDIR carries the ACL"
    component, folder = locked[0]
    assert component.get("Condition") is None, "the ACL is set on every install, not only with CONFIGSOURCE"
    assert folder.get("Directory") in (None, "SITECONFIGDIR")
    (permission,) = folder.findall(f"{WIX}PermissionEx")
    assert permission.get("Condition") is None
    owner, flags, aces = _sddl_aces(permission.get("Sddl"))
    assert owner == "BA"
    assert "P" in flags, "inheritance from ProgramData is removed (protected DACL)"
    assert all(ace[0] == "A" and "OI" in ace[1] and "CI" in ace[1] for ace in aces), aces
    rights = {ace[5]: ace[2] for ace in aces}
    assert len(rights) == len(aces) == 3 and set(rights) == {"BA", "SY", "BU"}, aces
    assert rights["BA"] == rights["SY"] == "FA"
    assert rights["BU"] in READ_EXECUTE, f"Users get read & execute only, not {rights['BU']}"
    # Nothing else in the package grants anyone rights on that folder or its files.
    others = [e for e in package.iter() if e.tag.endswith(("}Permission", "}PermissionEx")) and e is not permission]
    assert others == []
    # The folder has no other CreateFolder that could be processed without the lock.
    assert sum(1 for c in site for _ in c.iter(f"{WIX}CreateFolder")) == 1


POSTINSTALL_DIR = 'dir="/Library/Application Support/SpineDesk"'


def test_macos_postinstall_makes_the_site_dir_and_every_file_root_owned(tmp_path):
    """Run the postinstall against a scratch directory (chown recorded, not performed: tests do not run as root):
    the directory and everything in it end root:wheel, directories 0755 and files 0644, whatever was left there."""
    script = (INSTALLER / "macos" / "scripts" / "postinstall").read_text()
    assert script.count(POSTINSTALL_DIR) == 1
    site = tmp_path / "SpineDesk"
    site.mkdir(mode=0o777)
    site.chmod(0o777)
    for name, mode in (("spinedesk.toml", 0o666), ("wes-waivers.toml", 0o600), ("nhs-root-g2.pem", 0o664)):
        (site / name).write_text("x")
        (site / name).chmod(mode)
    (site / "certs").mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "chown.log"
    (bin_dir / "chown").write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log}"\n')
    (bin_dir / "chown").chmod(0o755)
    copy = tmp_path / "postinstall"
    copy.write_text(script.replace(POSTINSTALL_DIR, f'dir="{site}"'))
    result = subprocess.run(["sh", str(copy)], capture_output=True, text=True,
                            env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert result.returncode == 0, result.stderr
    assert site.stat().st_mode & 0o7777 == 0o755
    for name in ("spinedesk.toml", "wes-waivers.toml", "nhs-root-g2.pem"):
        assert (site / name).stat().st_mode & 0o7777 == 0o644, name
    assert (site / "certs").stat().st_mode & 0o7777 == 0o755
    assert log.read_text().splitlines() == [f"-R root:wheel {site}"]  # chown -R never follows symbolic links
