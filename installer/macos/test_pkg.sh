#!/usr/bin/env bash
# CI on macOS: silent install of the .pkg, --version, --self-test and a WES check from the installed app, then
# uninstall --purge and check nothing is left. Needs sudo (GitHub's macOS runners allow it). macOS only.
set -euo pipefail
pkg="${1:?usage: test_pkg.sh dist/SpineDesk-<version>.pkg}"
sudo installer -pkg "$pkg" -target /
[ -f "/Library/Application Support/SpineDesk/spinedesk.toml.example" ]
/usr/local/bin/spinedesk --version
QT_QPA_PLATFORM=offscreen /usr/local/bin/spinedesk --self-test
/usr/local/bin/spinedesk wes check --format json > wes.json || [ $? -eq 1 ]
python3 -c "import json; json.load(open('wes.json'))"
sudo sh installer/macos/uninstall.sh --purge
for p in "/Applications/Spine Desk.app" /usr/local/bin/spinedesk "/Library/Application Support/SpineDesk"; do
  [ ! -e "$p" ] || { echo "$p left behind" >&2; exit 1; }
done
echo "pkg install/self-test/uninstall OK"
