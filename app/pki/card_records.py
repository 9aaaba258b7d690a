"""What the training registration authority remembers about the cards it issued, beside the training CA: each
card's unblock code (its PUK) and the renewals waiting for the card to store its new certificate.

Files in the CA's folder, mode 0600, written atomically: ``card-unblock.json`` (``{card UUID: PUK}``) and
``renewals.json`` (``{new serial (hex): {"old": old serial (hex), "user": user id}}``). Training only: a real
card's unblock secret lives with NHS's card management system, never with this service. Nothing here logs a PUK.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.errors import PkiError

UNBLOCK_FILE = "card-unblock.json"
RENEWALS_FILE = "renewals.json"


@dataclass(frozen=True, slots=True)
class PendingRenewal:
    new_serial: int
    old_serial: int
    user_id: str


class CardRecords:
    """The records in ``directory`` (the training CA's folder). Thread-safe within a process; a lock file
    serialises processes."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()

    # --- unblock codes --------------------------------------------------------------------------------------

    def record_unblock_code(self, card_uuid: uuid.UUID, puk: str) -> None:
        if len(puk) != 8 or not puk.isascii() or not puk.isdigit():
            raise PkiError("a training card's unblock code (PUK) has 8 digits")
        with self._locked():
            codes = self._read(UNBLOCK_FILE)
            codes[str(card_uuid).lower()] = puk
            self._write(UNBLOCK_FILE, codes)

    def unblock_code(self, card_uuid: uuid.UUID) -> str | None:
        code = self._read(UNBLOCK_FILE).get(str(card_uuid).lower())
        return code if isinstance(code, str) else None

    # --- renewals -------------------------------------------------------------------------------------------

    def record_renewal(self, new_serial: int, old_serial: int, user_id: str) -> None:
        with self._locked():
            pending = self._read(RENEWALS_FILE)
            pending[format(new_serial, "x")] = {"old": format(old_serial, "x"), "user": user_id}
            self._write(RENEWALS_FILE, pending)

    def pending_renewal(self, new_serial: int) -> PendingRenewal | None:
        entry = self._read(RENEWALS_FILE).get(format(new_serial, "x"))
        if not isinstance(entry, dict):
            return None
        try:
            return PendingRenewal(new_serial, int(entry["old"], 16), str(entry["user"]))
        except (KeyError, TypeError, ValueError):
            return None

    def renewals_replacing(self, old_serial: int) -> list[PendingRenewal]:
        """The pending renewals whose old certificate is ``old_serial`` (one per attempt that got a certificate)."""
        found = []
        for new_hex, entry in self._read(RENEWALS_FILE).items():
            with contextlib.suppress(KeyError, TypeError, ValueError):
                if int(entry["old"], 16) == old_serial:
                    found.append(PendingRenewal(int(new_hex, 16), old_serial, str(entry["user"])))
        return found

    def finish_renewal(self, new_serial: int) -> None:
        with self._locked():
            pending = self._read(RENEWALS_FILE)
            if pending.pop(format(new_serial, "x"), None) is not None:
                self._write(RENEWALS_FILE, pending)

    # --- files ----------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Any:
        with self._lock:
            fd = os.open(self.directory / ".records.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                try:
                    import fcntl

                    fcntl.flock(fd, fcntl.LOCK_EX)
                except ImportError:  # Windows: one process at a time is the deployment there
                    pass
                yield
            finally:
                os.close(fd)

    def _read(self, name: str) -> dict[str, Any]:
        path = self.directory / name
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise PkiError(f"{path} cannot be read ({type(exc).__name__}); the training records are damaged") \
                from None
        if not isinstance(doc, dict):
            raise PkiError(f"{path} is not a JSON object; the training records are damaged")
        return doc

    def _write(self, name: str, doc: dict[str, Any]) -> None:
        path = self.directory / name
        tmp = path.with_name(f".{name}.{secrets.token_hex(4)}.tmp")
        data = (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode("utf-8")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
