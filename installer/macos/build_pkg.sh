#!/usr/bin/env bash
# Build the Spine Desk macOS installer package (pkgbuild + productbuild). Runs on macOS only.
#
#   bash installer/macos/build_pkg.sh          -> dist/SpineDesk-<version>.pkg
#
# Needs: Python 3.11 (python3.11 on PATH), Xcode command line tools (pkgbuild, productbuild, iconutil, sips).
# Optional: SIGN_APP="Developer ID Application: …" and SIGN_PKG="Developer ID Installer: …" to sign (notarise the
# result with `xcrun notarytool` before deploying). Installs:
#   /Applications/Spine Desk.app                       the PyInstaller bundle (every subcommand)
#   /usr/local/bin/spinedesk                           symlink to the bundle's executable
#   /Library/Application Support/SpineDesk/spinedesk.toml.example   (platformdirs' site config dir)
# Silent install: sudo installer -pkg dist/SpineDesk-<version>.pkg -target /
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
venv="$root/.venv-mac"
[ -x "$venv/bin/python" ] || python3.11 -m venv "$venv"
py="$venv/bin/python"
"$py" -m pip install -q --upgrade pip
"$py" -m pip install -q -e ".[dev]"

work="$root/build/installer"
mkdir -p "$work/macos" dist
# The icon first: installer/spinedesk.spec picks up installer/macos/spinedesk.icns when it exists.
iconset="$work/macos/spinedesk.iconset"
rm -rf "$iconset"; mkdir -p "$iconset"
"$py" installer/render_icon.py "$work/macos/png" --sizes 16 32 64 128 256 512 1024
for s in 16 32 128 256 512; do
  cp "$work/macos/png/spinedesk-$s.png" "$iconset/icon_${s}x${s}.png"
  cp "$work/macos/png/spinedesk-$((s * 2)).png" "$iconset/icon_${s}x${s}@2x.png"
done
iconutil -c icns "$iconset" -o installer/macos/spinedesk.icns

"$py" -m PyInstaller --noconfirm --log-level WARN --distpath "$work/dist" --workpath "$work/work" \
  installer/spinedesk.spec
app="$work/dist/Spine Desk.app"
QT_QPA_PLATFORM=offscreen "$app/Contents/MacOS/spinedesk" --self-test
[ -n "${SIGN_APP:-}" ] && codesign --force --deep --options runtime --timestamp --sign "$SIGN_APP" "$app"

version="$("$py" -c 'import app; print(app.__version__)')"
payload="$work/macos/payload"
rm -rf "$payload"
mkdir -p "$payload/Applications" "$payload/usr/local/bin" "$payload/Library/Application Support/SpineDesk"
ditto "$app" "$payload/Applications/Spine Desk.app"
ln -s "/Applications/Spine Desk.app/Contents/MacOS/spinedesk" "$payload/usr/local/bin/spinedesk"
sed -e 's|@SITE_DIR@|/Library/Application Support/SpineDesk|g' -e 's|@SEP@|/|g' installer/config/spinedesk.toml.in \
  > "$payload/Library/Application Support/SpineDesk/spinedesk.toml.example"

pkgbuild --root "$payload" --identifier uk.nhs.spinedesk --version "$version" --install-location / \
  --scripts installer/macos/scripts "$work/macos/spinedesk-component.pkg"
sed "s/@VERSION@/$version/g" installer/macos/distribution.xml > "$work/macos/distribution.xml"
sign=(); [ -n "${SIGN_PKG:-}" ] && sign=(--sign "$SIGN_PKG")
productbuild --distribution "$work/macos/distribution.xml" --package-path "$work/macos" \
  "${sign[@]}" "dist/SpineDesk-$version.pkg"
ls -l "dist/SpineDesk-$version.pkg"
