"""Running the operating system's own commands (reg, PowerShell, sw_vers, security, timedatectl …).

Probes take a :data:`Runner` so tests replay recorded outputs; :func:`run` is the real one.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence

Runner = Callable[[Sequence[str], float], str]


class CommandFailed(Exception):
    """A command could not be run or exited non-zero; the message says which and why."""


def run(argv: Sequence[str], timeout: float) -> str:
    """Run ``argv`` without a shell; its standard output (UTF-8, errors replaced) or :class:`CommandFailed`."""
    try:
        done = subprocess.run(list(argv), capture_output=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL)
    except FileNotFoundError as exc:
        raise CommandFailed(f"{argv[0]} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise CommandFailed(f"{argv[0]} did not answer within {timeout:g} s") from exc
    except OSError as exc:
        raise CommandFailed(f"{argv[0]} could not be run: {exc.strerror or exc}") from exc
    out = done.stdout.decode("utf-8", "replace")
    if done.returncode != 0:
        err = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise CommandFailed(f"{' '.join(argv[:3])} exited {done.returncode}" + (f": {err[-1][:200]}" if err else ""))
    return out


POWERSHELL = ("powershell.exe", "-NoProfile", "-NonInteractive", "-Command")


def powershell(script: str) -> tuple[str, ...]:
    return (*POWERSHELL, script)
