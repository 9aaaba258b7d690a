#!/usr/bin/env bash
# Build the Spine Desk MSI on Windows (Git Bash, as on GitHub's windows runners). Cannot run on Linux.
#
#   bash installer/windows/build_msi.sh            -> dist/SpineDesk-<version>-x64.msi
#
# Needs: Python 3.11 (x64) on PATH as `python`, and the WiX Toolset v5 CLI (`dotnet tool install --global wix
# --version 5.0.2`). Steps: venv with the dev extra -> PyInstaller (installer/spinedesk.spec) -> a frozen
# --self-test -> icon (.ico) and the configuration template rendered for C:\ProgramData\SpineDesk -> wix build.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
venv="$root/.venv-win"
[ -x "$venv/Scripts/python.exe" ] || python -m venv "$venv"
py="$venv/Scripts/python.exe"
"$py" -m pip install -q --upgrade pip
"$py" -m pip install -q -e ".[dev]"

work="$root/build/installer"
"$py" -m PyInstaller --noconfirm --log-level WARN --distpath "$work/dist" --workpath "$work/work" \
  installer/spinedesk.spec
QT_QPA_PLATFORM=offscreen "$work/dist/spinedesk/spinedesk.exe" --self-test

version="$("$py" -c 'import app; print(app.__version__)')"
mkdir -p "$work/windows" dist
"$py" installer/render_icon.py "$work/windows" --sizes 256 --ico
# platformdirs' site config dir for "SpineDesk" on Windows (appauthor=False): C:\ProgramData\SpineDesk
sed -e 's|@SITE_DIR@|C:\\ProgramData\\SpineDesk|g' -e 's|@SEP@|\\|g' installer/config/spinedesk.toml.in \
  > "$work/windows/spinedesk.toml.example"

wix build installer/windows/spinedesk.wxs -arch x64 \
  -d "Version=$version" \
  -d "BuildDir=$(cygpath -w "$work/dist/spinedesk")" \
  -d "IconFile=$(cygpath -w "$work/windows/spinedesk.ico")" \
  -d "ConfigTemplate=$(cygpath -w "$work/windows/spinedesk.toml.example")" \
  -o "dist/SpineDesk-$version-x64.msi"
ls -l "dist/SpineDesk-$version-x64.msi"
