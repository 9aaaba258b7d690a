#!/usr/bin/env bash
# Spine Desk set-up: installs everything a Debian 12 machine needs, then runs the client or the test suite.
#
#   scripts/setup.sh run     install, then start the desktop client in training mode
#   scripts/setup.sh test    install (with the test tools), start pcscd, then run the whole test suite
#   scripts/setup.sh install install and start pcscd, nothing else
#
# Idempotent: a second run installs nothing new and only (re)starts what is not running.
set -Eeuo pipefail

# Any failing step says what failed and what to do, instead of exiting silently under `set -e`.
step="starting"
on_error() {
  local status=$1 line=$2 command=$3
  echo "setup.sh: failed while ${step} (line ${line}, exit status ${status}): ${command}" >&2
  echo "setup.sh: fix the problem described above, then run 'scripts/setup.sh ${mode:-run}' again (it carries on" \
    "from where it stopped)." >&2
}
trap 'on_error "$?" "$LINENO" "$BASH_COMMAND"' ERR

mode="${1:-run}"; shift || true
case "$mode" in run|test|install) ;; *) echo "usage: $0 run|test|install [args…]" >&2; exit 2 ;; esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.venv"

# System packages. The client needs pcscd (real readers) and Qt's runtime libraries; building pyscard needs gcc,
# python3-dev and libpcsclite-dev; this script itself needs procps (pgrep, pkill), coreutils (sha256sum, cut, seq,
# sleep, id), grep and dpkg (dpkg-query) — the last three are on every Debian system, procps is not on a minimal one.
# Training mode ("run") and the tests also need the virtual reader driver, vsmartcard-vpcd: training and test
# machines only, never a production workstation (pcscd then accepts virtual cards from the network). Development and
# tests also need OpenSC and yubico-piv-tool (interoperability tests), the PKCS#11 modules opensc-pkcs11, softhsm2
# and ykcs11 (the PKCS#11 back-end's tests), Xvfb (real windows), PostgreSQL (the service's
# second store), binutils (PyInstaller), poppler-utils (pdftotext: the WES PDF report is read back in a test),
# debootstrap and desktop-file-utils (the .deb is installed into a bare Debian 12 and its desktop entry validated:
# tests/installer), faketime (the suite is run again with the clock moved: scripts/clock-shift-tests.sh). nftables
# comes with the virtual reader: vpcd cannot be told to listen on loopback only, so a host firewall table
# (scripts/vpcd-guard.nft) keeps its ports to this machine.
base_pkgs=(python3 python3-venv python3-dev gcc libpcsclite-dev pcscd procps coreutils grep dpkg
  libglib2.0-0 libgl1 libegl1 libxkbcommon0 libfreetype6 libfontconfig1 libdbus-1-3 fonts-dejavu-core
  libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-image0 libxcb-randr0
  libxcb-render-util0 libxcb-xfixes0 libxcb-xkb1 libx11-xcb1)
training_pkgs=(vsmartcard-vpcd nftables)
test_pkgs=(opensc opensc-pkcs11 softhsm2 ykcs11 pcsc-tools yubico-piv-tool xvfb xauth postgresql binutils openssl
  poppler-utils debootstrap desktop-file-utils faketime)
vpcd_warning="Note: vsmartcard-vpcd is for training and test machines only. Its virtual reader makes pcscd listen
for virtual cards on all interfaces (0.0.0.0, TCP 35963 and 35964): anyone who can reach this machine over the
network could insert a card. As root, this script then loads a host firewall rule (nftables) that lets only this
machine reach those ports."
pkgs=("${base_pkgs[@]}" "${training_pkgs[@]}")
[ "$mode" = test ] && pkgs+=("${test_pkgs[@]}")

step="checking the installed Debian packages"
missing=() missing_training=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" && continue
  if [[ " ${training_pkgs[*]} " == *" $p "* ]]; then missing_training+=("$p"); else missing+=("$p"); fi
done
if [ $((${#missing[@]} + ${#missing_training[@]})) -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    all_missing=("${missing[@]}" "${missing_training[@]}")
    echo "Spine Desk needs these Debian packages, which are not installed: ${all_missing[*]}" >&2
    printf 'Installing them needs root. Run this script as root, or ask IT to run' >&2
    if [ ${#missing[@]} -gt 0 ]; then
      echo ":" >&2
      echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
      [ ${#missing_training[@]} -eq 0 ] || printf 'and then' >&2
    fi
    if [ ${#missing_training[@]} -gt 0 ]; then
      echo ", on a training or test machine only (never a production workstation), for the training card's reader:" >&2
      echo "  apt-get update && apt-get install -y ${missing_training[*]}" >&2
      echo "$vpcd_warning" >&2
    fi
    exit 3
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt_log="$(mktemp)"
  # Wait up to 5 minutes for another apt or dpkg (unattended-upgrades on a fresh machine, say) to finish.
  apt_get() {
    if ! apt-get -o DPkg::Lock::Timeout=300 "$@" >"$apt_log" 2>&1; then
      echo "setup.sh: 'apt-get $1' failed; its last lines:" >&2
      tail -n 20 "$apt_log" | sed 's/^/  /' >&2
      if grep -qiE 'could not get lock|unable to acquire the dpkg' "$apt_log"; then
        echo "setup.sh: another apt-get, dpkg or unattended-upgrades holds the package lock. Wait for it to" \
          "finish (ps -C apt-get,dpkg,unattended-upgr), then run this script again." >&2
      elif grep -qiE 'dpkg was interrupted' "$apt_log"; then
        echo "setup.sh: an earlier dpkg run was interrupted: run 'dpkg --configure -a', then this script again." >&2
      else
        echo "setup.sh: check that this machine reaches its Debian mirror (/etc/apt/sources.list) and that the" \
          "packages named above exist in Debian 12 (bookworm)." >&2
      fi
      rm -f "$apt_log"
      exit 4
    fi
  }
  step="installing Debian packages"
  all_missing=("${missing[@]}" "${missing_training[@]}")
  echo "==> installing Debian packages: ${all_missing[*]}"
  [ ${#missing_training[@]} -eq 0 ] || echo "$vpcd_warning"
  apt_get update
  apt_get install -y --no-install-recommends "${all_missing[@]}"
  rm -f "$apt_log"
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
  step="creating the virtual environment in $venv"
  echo "==> creating the virtual environment in $venv"
  # a venv left without pip (an interrupted first run) is made again
  if ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then "$py" -m venv --clear "$venv"; fi
  step="installing the Python dependencies with pip (PyPI must be reachable; pyscard is compiled here)"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "pip==26.3"  # pinned: a new pip can change what an install prints or does
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$extras"
  echo "$want" > "$stamp"
fi

# pcscd: start it if it is not running. Never --auto-exit (it would quit 60 s after its last client with a card
# still inserted) and never --apdu (it logs every APDU, PINs included, in clear). Debian's systemd unit passes
# --auto-exit, so under systemd a drop-in replaces its command line.
start_pcscd() {
  step="starting pcscd, the smart card service"
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
    if ! pgrep -x pcscd >/dev/null; then
      echo "==> starting pcscd"
      pcscd || { echo "setup.sh: pcscd did not start; 'pcscd --foreground --debug' shows why." >&2; return 1; }
    fi
  fi
  for _ in $(seq 50); do [ -S /run/pcscd/pcscd.comm ] && return 0; sleep 0.1; done
  echo "setup.sh: pcscd is running but its socket /run/pcscd/pcscd.comm did not appear." >&2
}
# The virtual reader listens on every interface (DEVICENAME /dev/null:0x8C7B; Debian's vpcd has no option to listen
# on loopback only, and its reverse mode crashes pcscd when nothing serves a slot). A host firewall table drops TCP
# to its ports from any source but loopback; under systemd it is loaded again before every start of pcscd (the
# table lives until reboot or 'nft flush ruleset'); without systemd (a container) on every run of this script. The
# WES check pcsc.virtual verifies it by connecting from this machine's own addresses.
vpcd_installed() { dpkg-query -W -f='${Status}' vsmartcard-vpcd 2>/dev/null | grep -q "install ok installed"; }
vpcd_unguarded() {
  echo "setup.sh: the virtual reader's ports (TCP 35963, 35964) are NOT guarded: $1." >&2
  echo "  vpcd listens on all interfaces, so anyone who can reach this machine over the network could present a" >&2
  echo "  card to pcscd and capture the PIN typed for it. The WES check pcsc.virtual therefore fails in training" >&2
  echo "  too, and the client keeps clinical use closed, unless IT records that this machine is on an isolated" >&2
  echo "  network with a training-only waiver (docs/wes.md, Waivers); or run this script as root where nft may load" >&2
  echo "  rules (not in a container without CAP_NET_ADMIN)." >&2
}
guard_vpcd() {
  step="guarding the virtual reader's ports with nftables"
  vpcd_installed || return 0
  local rules="$root/scripts/vpcd-guard.nft" installed=/usr/local/share/spinedesk/vpcd-guard.nft nft out
  if ! nft="$(command -v nft)"; then
    vpcd_unguarded "nft (Debian package nftables) is not installed"; return 0
  fi
  if ! out="$("$nft" -f "$rules" 2>&1)"; then
    vpcd_unguarded "nft could not load $rules (${out//$'\n'/ }); it needs root with CAP_NET_ADMIN"; return 0
  fi
  echo "==> virtual reader ports TCP 35963, 35964: only this machine can connect (nftables table inet spinedesk_vpcd_guard)"
  if [ -d /run/systemd/system ]; then
    local dropin=/etc/systemd/system/pcscd.service.d/spinedesk-vpcd-guard.conf
    local want="[Service]"$'\n'"ExecStartPre=-$nft -f $installed"
    install -D -m 0644 "$rules" "$installed"  # root's copy: the unit never runs a file from a user's checkout
    if [ "$(cat "$dropin" 2>/dev/null)" != "$want" ]; then
      mkdir -p "$(dirname "$dropin")"
      printf '%s\n' "$want" > "$dropin"
      systemctl daemon-reload
    fi
  fi
}
if [ "$(id -u)" -eq 0 ]; then
  guard_vpcd
  start_pcscd
else
  if vpcd_installed; then
    vpcd_unguarded "this script is not running as root, so it can neither load nor check the firewall rule (if IT has
  already run it as root, 'spinedesk wes check' shows whether the guard is in place)"
  fi
  if ! pgrep -x pcscd >/dev/null 2>&1 && [ ! -S /run/pcscd/pcscd.comm ]; then
    echo "pcscd (the smart card service) is not running; ask IT to start it: systemctl start pcscd" >&2
  fi
fi
step="starting $mode"

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
