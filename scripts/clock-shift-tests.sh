#!/usr/bin/env bash
# Runs the test suite again with the wall clock moved forward, so a test (or product code) that mixes a fixed date
# with the real clock fails on the day it is written, not months later.
#
#   scripts/clock-shift-tests.sh [SHIFT …] [-- pytest args …]     default shifts: +90d +400d
#
# Needs what `scripts/setup.sh test` installs (it installs libfaketime, Debian package faketime). Each Python process
# of the run, and every process it starts, sees the shifted time through libfaketime; the monotonic clock stays real
# and tests/clockshift/sitecustomize.py works around libfaketime's sleep wrapper (see that file).
# Left out: the installer and fresh-machine tests (a chroot with its own apt and pip, minutes each, nothing dated),
# tests marked real_date (they check dates written in the repository against the real calendar on purpose) and
# tests marked stress (load, fuzzing, kill -9: many minutes of CPU, and no date of their own to get wrong).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

shifts=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do shifts+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
[ ${#shifts[@]} -gt 0 ] || shifts=(+90d +400d)

command -v faketime >/dev/null || { echo "faketime is not installed (apt-get install faketime); run scripts/setup.sh test first" >&2; exit 3; }
[ -x .venv/bin/python ] || { echo "no .venv here; run scripts/setup.sh test first" >&2; exit 3; }

status=0
for shift_by in "${shifts[@]}"; do
  echo "==> the test suite with the clock moved $shift_by (now: $(faketime -f "$shift_by" date -u +%F))"
  if ! PYTHONPATH="$root/tests/clockshift${PYTHONPATH:+:$PYTHONPATH}" FAKETIME_DONT_FAKE_MONOTONIC=1 \
      faketime -f "$shift_by" .venv/bin/python -m pytest -m "not installer and not fresh and not real_date and not stress" \
      -p no:cacheprovider "$@"; then
    echo "==> FAILED with the clock moved $shift_by: a test or the code it runs mixes a fixed date with the real clock" >&2
    status=1
  fi
done
exit $status
