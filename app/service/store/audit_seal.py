"""The audit chain's key and its published checkpoints: what lives OUTSIDE the database.

A database administrator (or anyone who can write to the database) could otherwise rewrite the chain: the hash
formula is public, so an edited record and every later hash can be recomputed, and deleting the newest records
only needs the chain head moved back. Two things stop that:

* **The key.** Records are chained with ``HMAC-SHA256(key, canonical record)`` instead of plain SHA-256; the key
  lives in a 0600 file on the service's host (default: ``audit.key`` in the service's private data folder;
  production: ``[service] audit_key`` in the site configuration), never in the database. A keyed record's stored
  hash is ``hmac-sha256:<key id>:<hex>``: the prefix marks the chain format (older databases keep their unkeyed
  SHA-256 records, which still verify; once one keyed record is written, every later record must be keyed) and
  the key id (derived from the key, revealing nothing of it) names which key made it.
* **Checkpoints.** Every service process appends, after a commit, a line naming the chain head it just wrote
  (``seq``, ``hash``, time, host, process) with an HMAC over them to a 0600 append-only file per host in the
  checkpoint folder (default: ``audit-checkpoints`` beside the key), and logs it. It does so on its first commit,
  then every ``every_records`` records or ``every_seconds`` (whichever comes first), and when it closes. Every
  checkpoint in a chain's folder is taken to be that chain's: the default folder has one sub-folder per database
  (named after its file or database name); a configured folder must serve one database only.
  ``audit verify`` checks every published checkpoint against the records: a checkpoint beyond the chain head means
  the newest records were deleted and the head rewound; a record that differs from its checkpoint was rewritten.

Several processes on one host append to the same file (one ``write`` of one line per checkpoint, ``O_APPEND``);
several hosts (PostgreSQL) each write their own file and share one key. See docs/decisions/audit-chain.md.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import secrets
import socket
import threading
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from app.private_files import DIR_MODE, FILE_MODE, tighten

from .errors import StoreError

log = logging.getLogger("app.service.audit")

KEY_BYTES = 32
KEYED_PREFIX = "hmac-sha256:"  # a keyed record's stored hash: "hmac-sha256:<key id>:<64 hex>"
CHECKPOINT_SUFFIX = ".checkpoints"
EVERY_RECORDS = 10_000  # a process publishes the head at least every this many records of the chain …
EVERY_SECONDS = 60.0  # … and at least this often while it writes
_POSIX = os.name == "posix"


class AuditKeyError(StoreError):
    """The audit key cannot be used: missing where one is needed, unreadable, malformed, readable by others, or
    not the key the chain was written with."""

    def __init__(self, path: str, problem: str, hint: str) -> None:
        super().__init__(f"the audit key {path}: {problem}; {hint}")
        self.path = path
        self.problem = problem


class AuditKey:
    """The secret that keys the chain. ``key_id`` names it in stored hashes (a one-way derivation)."""

    __slots__ = ("_secret", "key_id", "path", "prefix")

    def __init__(self, secret: bytes, path: str = "") -> None:
        if len(secret) < KEY_BYTES:
            raise ValueError(f"an audit key needs at least {KEY_BYTES} bytes")
        self._secret = bytes(secret)
        self.key_id = hmac.digest(self._secret, b"spinedesk audit key id", "sha256").hex()[:16]
        self.prefix = f"{KEYED_PREFIX}{self.key_id}:"
        self.path = path

    def seal(self, data: bytes) -> str:
        """The stored hash of a keyed record whose canonical encoding is ``data``."""
        return self.prefix + hmac.digest(self._secret, data, "sha256").hex()

    def mac(self, data: bytes) -> str:
        return hmac.digest(self._secret, b"checkpoint\x00" + data, "sha256").hex()

    @classmethod
    def generate(cls, path: str = "") -> AuditKey:
        return cls(secrets.token_bytes(KEY_BYTES), path)

    @classmethod
    def load(cls, path: Path) -> AuditKey:
        """Read a key file (64+ hex digits); ``AuditKeyError`` if missing, unreadable, malformed or open to others."""
        try:
            text = path.read_text(encoding="ascii").strip()
        except FileNotFoundError as exc:
            raise AuditKeyError(str(path), "the file does not exist",
                                "run audit verify on the service's host as the service's user, give the key's "
                                "path with --audit-key, or set [service] audit_key in the site configuration") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise AuditKeyError(str(path), f"it cannot be read ({getattr(exc, 'strerror', None) or exc})",
                                "run this as the service's user") from exc
        if _POSIX and os.stat(path).st_mode & 0o007:
            raise AuditKeyError(str(path), "other users may read or change it",
                                f"make it readable by the service's user only (chmod 600 {path})")
        if not re.fullmatch(r"[0-9a-f]{64,}", text):
            raise AuditKeyError(str(path), "it is not an audit key (64 or more hexadecimal digits)",
                                "restore it from your key backup")
        return cls(bytes.fromhex(text), str(path))

    @classmethod
    def load_or_create(cls, path: Path) -> AuditKey:
        """Load the key; on first start generate it, 0600, atomically (racing worker processes all end up with the
        one that was linked into place first)."""
        if path.exists():
            return cls.load(path)
        path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        try:
            os.write(fd, (secrets.token_bytes(KEY_BYTES).hex() + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            with suppress(FileExistsError):
                os.link(tmp, path)  # atomic, and never replaces a key another process made first
        finally:
            tmp.unlink(missing_ok=True)
        return cls.load(path)


class Checkpoint(NamedTuple):
    """A published chain head: record ``seq`` had ``hash`` at ``at`` (ISO UTC), written by ``host``."""

    seq: int
    hash: str
    at: str
    host: str
    where: str  # file and line, for messages


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname() or "host")[:64] or "host"


def _body(seq: int, hash_: str, at: str, host: str, pid: int) -> bytes:
    return json.dumps({"seq": seq, "hash": hash_, "at": at, "host": host, "pid": pid}, sort_keys=True,
                      separators=(",", ":")).encode("utf-8")


class CheckpointLog:
    """The checkpoint folder: one append-only file per host, read back whole by ``audit verify``."""

    def __init__(self, directory: Path, key: AuditKey, host: str | None = None, *, shared: bool = False) -> None:
        """``shared``: ``directory`` may serve several databases (the default folder beside the key): each chain
        publishes to a sub-folder named after its database (``for_chain``). Otherwise the folder is this chain's."""
        self.key = key
        self.host = host or _host()
        self._base, self._shared = directory, shared
        self._at(directory)

    def _at(self, directory: Path) -> None:
        self.directory = directory
        self.file = directory / f"{self.host}{CHECKPOINT_SUFFIX}"

    def for_chain(self, name: str) -> None:
        if self._shared:
            self._at(self._base / re.sub(r"[^A-Za-z0-9._-]", "_", name))

    def append(self, seq: int, hash_: str, at: datetime) -> None:
        when = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body = _body(seq, hash_, when, self.host, os.getpid())
        doc = json.loads(body)
        doc["mac"] = self.key.mac(body)
        line = json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n"
        self._base.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        self.directory.mkdir(mode=DIR_MODE, exist_ok=True)
        fd = os.open(self.file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
        try:
            os.write(fd, line.encode("utf-8"))  # one write of one short line: lines of processes never interleave
        finally:
            os.close(fd)
        tighten([self.file])
        log.info("audit checkpoint %s", line.rstrip("\n"))

    def read(self) -> tuple[list[Checkpoint], list[str]]:
        """Every checkpoint whose HMAC is right, and a description of every line that is not (forged or damaged).
        A last line without its newline (a crash during the write) is skipped."""
        found: list[Checkpoint] = []
        problems: list[str] = []
        if not self.directory.is_dir():
            return found, problems
        for path in sorted(self.directory.glob(f"*{CHECKPOINT_SUFFIX}")):
            text = path.read_text(encoding="utf-8", errors="replace")
            lines = text.split("\n")
            for number, line in enumerate(lines[:-1], start=1):  # lines[-1]: after the last newline
                if not line.strip():
                    continue
                try:
                    doc = json.loads(line)
                    body = _body(int(doc["seq"]), str(doc["hash"]), str(doc["at"]), str(doc["host"]),
                                 int(doc["pid"]))
                    good = hmac.compare_digest(str(doc["mac"]), self.key.mac(body))
                except (ValueError, KeyError, TypeError):
                    good = False
                if not good:
                    problems.append(f"{path} line {number}")
                    continue
                found.append(Checkpoint(int(doc["seq"]), str(doc["hash"]), str(doc["at"]), str(doc["host"]),
                                        f"{path.name} line {number}"))
        return found, problems


class AuditSeal:
    """What a store needs to key the chain and publish its head: the key (``None``: this process has none, so it
    can verify only unkeyed chains and cannot append to a keyed one) and the checkpoint log."""

    def __init__(self, key: AuditKey | None, checkpoints: CheckpointLog | None = None, *,
                 every_records: int = EVERY_RECORDS, every_seconds: float = EVERY_SECONDS,
                 clock: Callable[[], datetime] | None = None, key_path: str = "") -> None:
        self.key = key
        self.key_path = key_path or (key.path if key is not None else "")  # where the key is (or was looked for)
        self.checkpoints = checkpoints
        self.every_records = every_records
        self.every_seconds = every_seconds
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._seen: tuple[int, str] | None = None  # the newest record this process committed
        self._published: tuple[int, datetime] | None = None  # the last checkpoint it wrote

    def committed(self, seq: int, hash_: str) -> None:
        """Record ``seq`` (with ``hash_``) has committed: publish it if a checkpoint is due."""
        if self.checkpoints is None:
            return
        with self._lock:
            if self._seen is None or seq > self._seen[0]:
                self._seen = (seq, hash_)
            now = self._clock()
            last = self._published
            if (last is None or seq - last[0] >= self.every_records
                    or (now - last[1]).total_seconds() >= self.every_seconds):
                self._publish(now)

    def flush(self) -> None:
        """Publish the newest committed record if it has not been (on close)."""
        if self.checkpoints is None:
            return
        with self._lock:
            if self._seen is not None and (self._published is None or self._published[0] < self._seen[0]):
                self._publish(self._clock())

    def _publish(self, now: datetime) -> None:
        assert self._seen is not None and self.checkpoints is not None
        seq, hash_ = self._seen
        try:
            self.checkpoints.append(seq, hash_, now)
        except OSError as exc:  # the record is committed: a missed checkpoint only narrows what verify can prove
            log.error("cannot write the audit checkpoint for record %d to %s: %s", seq, self.checkpoints.file,
                      exc.strerror or exc)
            return
        self._published = (seq, now)

    def published(self) -> tuple[list[Checkpoint], list[str]]:
        if self.checkpoints is None:
            return [], []
        return self.checkpoints.read()


def open_seal(key_path: Path, checkpoint_dir: Path | None = None, *, create: bool,
              clock: Callable[[], datetime] | None = None, every_records: int = EVERY_RECORDS,
              every_seconds: float = EVERY_SECONDS) -> AuditSeal:
    """The seal for a key file (created on first start when ``create``; else a missing key gives a seal without a
    key, which can still verify unkeyed chains) and its checkpoint folder (default: ``audit-checkpoints`` beside
    the key)."""
    if create:
        key: AuditKey | None = AuditKey.load_or_create(key_path)
    else:
        try:
            key = AuditKey.load(key_path)
        except AuditKeyError as exc:
            if key_path.exists():
                raise
            log.debug("no audit key: %s", exc)
            key = None
    directory = checkpoint_dir or key_path.parent / "audit-checkpoints"
    log_ = CheckpointLog(directory, key, shared=checkpoint_dir is None) if key is not None else None
    return AuditSeal(key, log_, every_records=every_records, every_seconds=every_seconds, clock=clock,
                     key_path=str(key_path))
