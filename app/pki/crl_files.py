"""CRL files as a long-running process sees them: cheap change detection, and the last good copy kept when a new
one cannot be used.

A file's *stamp* (inode, size, modification and change times in nanoseconds) is taken with one ``stat`` call:
publishing a CRL by renaming a new file over the old one (a new inode) or by writing it in place (new times) both
change it. The stamp is taken before the file is read, so a file that changes while it is read is read again.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography import x509

from app.errors import PkiError
from app.pki.revocation import PARSE_ERRORS

Stamp = tuple[int, int, int, int]


def stamp(path: Path) -> Stamp | None:
    """The file's identity and times; None when it cannot be seen (missing, no permission)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def parse_crl(data: bytes) -> x509.CertificateRevocationList:
    """A PEM or DER CRL, with its extensions parsed now (cryptography parses them lazily)."""
    crl = x509.load_pem_x509_crl(data) if b"-----BEGIN" in data else x509.load_der_x509_crl(data)
    _ = crl.extensions
    return crl


@dataclass(frozen=True)
class CrlFile:
    """One configured CRL file as last read: the CRL in use (the last good one), and the problem with what the file
    holds now, if any."""

    path: Path
    stamp: Stamp | None
    digest: bytes  # SHA-256 of the bytes of the CRL in use
    crl: x509.CertificateRevocationList
    error: str = ""


def read_crl_file(path: Path, previous: CrlFile | None,
                  unusable: Callable[[x509.CertificateRevocationList], str | None]) -> CrlFile:
    """Read ``path``; ``unusable(crl)`` says why a parsed CRL must not be used (None: it may).

    Without a ``previous`` copy (at start) a problem raises ``PkiError``; with one, the previous CRL stays in use
    and the problem is recorded in ``error``."""
    seen = stamp(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        return _keep(previous, path, seen, f"cannot read the CRL file {path}: {e.strerror or e}")
    digest = hashlib.sha256(data).digest()
    if previous is not None and previous.digest == digest:
        return replace(previous, stamp=seen, error="")
    try:
        crl = parse_crl(data)
    except PARSE_ERRORS as e:
        return _keep(previous, path, seen, f"the CRL file {path} does not hold a PEM or DER CRL ({e})")
    if why := unusable(crl):
        return _keep(previous, path, seen, f"the CRL file {path} cannot be used: {why}")
    return CrlFile(path, seen, digest, crl)


def _keep(previous: CrlFile | None, path: Path, seen: Stamp | None, problem: str) -> CrlFile:
    if previous is None:
        raise PkiError(f"{problem}; publish a correct CRL there")
    return replace(previous, path=path, stamp=seen, error=f"{problem}; the CRL read before is still in use")
