"""The trust store of a long-running process (each service worker): anchors and intermediates fixed at start,
CRLs re-read while it runs.

:meth:`LiveTrust.current` is called on every login and every authenticated request. It ``stat``s the CRL files
(microseconds) and re-reads any that changed. It also re-reads them

* when asked: :meth:`request_reload` (SIGHUP; safe in a signal handler, the re-read happens at the next call)
  or :meth:`reload` (the ``spinedesk service reload-crl`` command, tests);
* while a loaded CRL is within :data:`REFRESH_MARGIN` of its next update or past it, at most every
  ``recheck_seconds`` for the same CRL (for file systems whose times are coarse), first calling ``refresh``
  (the training CA: it republishes its CRL then).

A file that cannot be read, is not a CRL, or is not signed by a configured authority is reported (``errors``, a
warning in the log) and its last good CRL stays in use: a CRL half-copied into place must not refuse every login.
If no good one follows, the one in use runs out and logins are refused with ``RevocationInfoStale``, which names
the file to replace. Every process keeps its own copy and reloads it itself; nothing here is shared.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509

from app.errors import AppError
from app.pki.crl_files import CrlFile, read_crl_file, stamp
from app.pki.revocation import crl_is_authentic
from app.pki.revocation_view import RevocationView, build_view
from app.pki.validation import TrustStore

log = logging.getLogger(__name__)
REFRESH_MARGIN = timedelta(days=1)  # the training CA republishes when less than a day is left, too


class LiveTrust:
    def __init__(self, anchors: Iterable[x509.Certificate], intermediates: Iterable[x509.Certificate] = (),
                 crl_paths: Iterable[Path] = (), *, require_revocation: bool,
                 refresh: Callable[[], object] | None = None, fixed_crls: Iterable[x509.CertificateRevocationList] = (),
                 recheck_seconds: float = 30.0) -> None:
        """Reads every CRL file now: ``PkiError`` if one cannot be used (a service must not start without)."""
        self._base = TrustStore(tuple(anchors), tuple(intermediates), require_revocation=require_revocation)
        self._fixed = tuple(fixed_crls)
        self._refresh = refresh
        self._recheck = recheck_seconds
        self._lock = threading.Lock()
        self._asked = False
        self._refreshed: tuple[float, datetime | None] | None = None  # (monotonic time, next update) of the last
        self._refresh_error = ""
        self._files = tuple(read_crl_file(Path(p), None, self._unusable) for p in crl_paths)
        self._view = self._build(0)

    @classmethod
    def fixed(cls, store: TrustStore) -> LiveTrust:
        """A trust store as given, CRLs and all, never reloaded (tools and tests that build one in memory)."""
        return cls(store.anchors, store.intermediates, require_revocation=store.require_revocation,
                   fixed_crls=store.crls)

    @property
    def crl_files(self) -> tuple[CrlFile, ...]:
        """The configured CRL files as last read (each with the CRL in use)."""
        return self._files

    @property
    def errors(self) -> tuple[str, ...]:
        """Problems found at the last reads (the last good CRLs are in use meanwhile)."""
        return tuple(e for e in (self._refresh_error, *(f.error for f in self._files)) if e)

    def current(self, now: datetime) -> RevocationView:
        """The view to decide with at ``now``, re-read first when a file changed, a reload was asked for, or a
        loaded CRL is near its next update."""
        view = self._view
        if self._asked or self._refresh_due(view, now) or any(stamp(f.path) != f.stamp for f in self._files):
            with self._lock:
                view = self._update(now, force=False)
        return view

    def request_reload(self) -> None:
        """Re-read every CRL file at the next :meth:`current` (safe to call from a signal handler)."""
        self._asked = True

    def reload(self, now: datetime) -> RevocationView:
        """Re-read every CRL file now (refreshing the training CA's first); always a new generation."""
        with self._lock:
            return self._update(now, force=True)

    # --- under the lock -----------------------------------------------------------------------------------------

    def _update(self, now: datetime, *, force: bool) -> RevocationView:
        asked, self._asked = self._asked or force, False
        reread = asked
        if self._refresh_due(self._view, now):
            self._refreshed = (time.monotonic(), self._view.earliest_next_update)
            self._run_refresh()
            reread = True
        files, changed = [], False
        for f in self._files:
            if reread or stamp(f.path) != f.stamp:
                new = read_crl_file(f.path, f, self._unusable)
                if new.error and new.error != f.error:
                    log.warning("%s", new.error)
                changed = changed or new.digest != f.digest
                f = new
            files.append(f)
        self._files = tuple(files)
        if changed or asked:
            self._view = self._build(self._view.generation + 1)
            log.info("CRLs reloaded (generation %d): %s", self._view.generation,
                     ", ".join(str(f.path) for f in self._files) or "no CRL files")
        return self._view

    def _run_refresh(self) -> None:
        if self._refresh is None:
            return
        try:
            self._refresh()
            self._refresh_error = ""
        except AppError as e:
            self._refresh_error = f"the CRL could not be republished: {e}"
            log.warning("%s", self._refresh_error)

    def _refresh_due(self, view: RevocationView, now: datetime) -> bool:
        due = view.earliest_next_update
        if due is None or due - now > REFRESH_MARGIN or not (self._files or self._refresh):
            return False
        last = self._refreshed
        return last is None or last[1] != due or time.monotonic() - last[0] >= self._recheck

    def _build(self, generation: int) -> RevocationView:
        sources = [*((c, "") for c in self._fixed), *((f.crl, str(f.path)) for f in self._files)]
        store = TrustStore(self._base.anchors, self._base.intermediates, tuple(c for c, _ in sources),
                           require_revocation=self._base.require_revocation)
        return build_view(store, sources, generation=generation, crl_paths=tuple(str(f.path) for f in self._files))

    def _unusable(self, crl: x509.CertificateRevocationList) -> str | None:
        cas = (*self._base.anchors, *self._base.intermediates)
        if any(crl_is_authentic(crl, ca) for ca in cas):
            return None
        return f"it is not signed by any configured authority (it names '{crl.issuer.rfc4514_string()}')"
