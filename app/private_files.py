"""Files only their owner may read: folders 0700, files 0600 (POSIX; Windows keeps its ACLs).

The service's database and logs hold patient data (NHS numbers appear in failure logs), so everything it creates
is private from the start, and files an older version left readable are tightened when it starts, as the
training CA does for its keys (``app.pki.ca``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
PRIVATE_UMASK = 0o077
_POSIX = os.name == "posix"


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) 0700; tighten it if it exists with a looser mode."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    tighten([path], DIR_MODE)
    return path


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists; tighten it either way."""
    if _POSIX:
        with suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    tighten([path], FILE_MODE)


def tighten(paths: Iterable[Path], mode: int = FILE_MODE) -> None:
    """Take group and other permissions off those of ``paths`` that exist (never loosens)."""
    if not _POSIX:
        return
    for path in paths:
        try:
            current = os.stat(path).st_mode & 0o777
            if current & ~mode:
                os.chmod(path, current & mode)
        except FileNotFoundError:
            continue


def private_umask() -> int:
    """Make files and folders this process creates from now on private; returns the previous umask."""
    return os.umask(PRIVATE_UMASK) if _POSIX else 0
