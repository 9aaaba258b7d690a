#!/usr/bin/env bash
# Spine Desk set-up: installs everything a Debian 12 machine needs, then runs the client or the test suite.
#
#   scripts/setup.sh run     install, then start the desktop client in training mode
#   scripts/setup.sh test    install (with the test tools), start pcscd, then run the whole test suite
#
# Idempotent: a second run installs nothing new and only (re)starts what is not running.
set -euo pipefail

mode="${1:-run}"; shift || true
case "$mode" in run|test|install) ;; *) echo "usage: $0 run|test|install [args…]" >&2; exit 2 ;; esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.venv"

# System packages. The client needs pcscd (real readers) and Qt's runtime libraries; development and tests also
# need the virtual reader driver (vsmartcard-vpcd — never on a production machine), OpenSC and yubico-piv-tool
# (interoperability tests), Xvfb (real windows), PostgreSQL (the service's second store), binutils (PyInstaller),
# poppler-utils (pdftotext: the WES PDF report is read back in a test), debootstrap and desktop-file-utils (the
# .deb is installed into a bare Debian 12 and its desktop entry validated: tests/installer).
base_pkgs=(python3 python3-venv python3-dev gcc libpcsclite-dev pcscd
  libglib2.0-0 libgl1 libegl1 libxkbcommon0 libfreetype6 libfontconfig1 libdbus-1-3 fonts-dejavu-core
  libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-image0 libxcb-randr0
  libxcb-render-util0 libxcb-xfixes0 libxcb-xkb1 libx11-xcb1 vsmartcard-vpcd)
test_pkgs=(opensc pcsc-tools yubico-piv-tool xvfb xauth postgresql binutils openssl procps poppler-utils
  debootstrap desktop-file-utils)
pkgs=("${base_pkgs[@]}")
[ "$mode" = test ] && pkgs+=("${test_pkgs[@]}")

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "Spine Desk needs these Debian packages, which are not installed: ${missing[*]}" >&2
    echo "Installing them needs root. Run this script as root, or ask IT to run:" >&2
    echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 3
  fi
  echo "==> installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python 3.11: Debian 12's own, or a newer-built 3.11 already on PATH.
py=""
for cand in "${PYTHON:-}" python3.11 python3; do
  [ -n "$cand" ] && command -v "$cand" >/dev/null || continue
  if "$cand" -c 'import sys, venv; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then py="$cand"; break; fi
done
[ -n "$py" ] || { echo "Python 3.11 with venv is required (Debian 12: apt-get install python3 python3-venv)." >&2; exit 3; }

extras="."; [ "$mode" = test ] && extras=".[dev]"
stamp="$venv/.spinedesk-installed"
hash="$(sha256sum pyproject.toml | cut -c1-16)"
want="$hash $extras"
have="$(cat "$stamp" 2>/dev/null || true)"
# an install with the test tools also serves "run"
if [ ! -x "$venv/bin/python" ] || { [ "$have" != "$want" ] && [ "$have" != "$hash .[dev]" ]; }; then
  echo "==> creating the virtual environment in $venv"
  [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$extras"
  echo "$want" > "$stamp"
fi

# pcscd: start it if it is not running. Never --auto-exit (it would quit 60 s after its last client with a card
# still inserted) and never --apdu (it logs every APDU, PINs included, in clear). Debian's systemd unit passes
# --auto-exit, so under systemd a drop-in replaces its command line.
start_pcscd() {
  if [ -d /run/systemd/system ]; then
    dropin=/etc/systemd/system/pcscd.service.d/spinedesk.conf
    if [ ! -f "$dropin" ]; then
      mkdir -p "$(dirname "$dropin")"
      printf '[Service]\nExecStart=\nExecStart=/usr/sbin/pcscd --foreground $PCSCD_ARGS\n' > "$dropin"
      systemctl daemon-reload
      systemctl restart pcscd.service 2>/dev/null || true
    fi
    systemctl enable --now pcscd.socket >/dev/null 2>&1 || true
    systemctl start pcscd.service
  else
    if pgrep -a -x pcscd | grep -qE -- '--auto-exit|--apdu| -a( |$)'; then
      echo "==> restarting pcscd without --auto-exit/--apdu"
      pkill -TERM -x pcscd
      for _ in $(seq 50); do pgrep -x pcscd >/dev/null || break; sleep 0.1; done
    fi
    pgrep -x pcscd >/dev/null || { echo "==> starting pcscd"; pcscd; }
  fi
  for _ in $(seq 50); do [ -S /run/pcscd/pcscd.comm ] && break; sleep 0.1; done
}
if [ "$(id -u)" -eq 0 ]; then
  start_pcscd
elif ! pgrep -x pcscd >/dev/null 2>&1 && [ ! -S /run/pcscd/pcscd.comm ]; then
  echo "pcscd (the smart card service) is not running; ask IT to start it: systemctl start pcscd" >&2
fi

export PATH="$venv/bin:$PATH"
case "$mode" in
  install) exit 0 ;;
  run)
    if [ $# -eq 0 ] && [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
      echo "No display here, so the desktop client cannot open a window; starting the training Spine service"
      echo "instead (http://127.0.0.1:8443, synthetic patients). Stop it with Ctrl-C."
      exec "$venv/bin/spinedesk" service --seed 1000
    fi
    exec "$venv/bin/spinedesk" "$@" ;;
  test)
    export SPINEDESK_REQUIRE_PCSC="${SPINEDESK_REQUIRE_PCSC:-${CI:-}}"
    exec "$venv/bin/python" -m pytest "$@" ;;
esac
