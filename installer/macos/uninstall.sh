#!/bin/sh
# Remove Spine Desk from a Mac (macOS has no package uninstaller). Run as root:
#   sudo sh installer/macos/uninstall.sh [--purge]
# --purge also deletes /Library/Application Support/SpineDesk (the site configuration and certificates there).
# Users' own data (~/Library/Application Support/SpineDesk) is never touched.
set -e
rm -rf "/Applications/Spine Desk.app"
[ -L /usr/local/bin/spinedesk ] && rm -f /usr/local/bin/spinedesk
rm -f "/Library/Application Support/SpineDesk/spinedesk.toml.example"
if [ "${1:-}" = "--purge" ]; then
    rm -rf "/Library/Application Support/SpineDesk"
fi
pkgutil --forget uk.nhs.spinedesk >/dev/null 2>&1 || true
echo "Spine Desk removed"
