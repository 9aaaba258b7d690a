"""The composed storage: the SQLite and PostgreSQL stores, each every feature's SQL over one engine, and their
schema migrations. The one place the features meet below the HTTP layer.

``open_store(url)`` opens (creating and migrating as needed) the database a ``--database`` URL names:

* ``sqlite:///absolute/path/spinedesk.db`` — a file (its directory must exist); ``sqlite:///C:/…`` on Windows;
* ``sqlite:///:memory:`` — a private in-memory database (tests);
* ``postgresql://user:password@host:5432/dbname?sslmode=…`` (or ``postgres://``) — any libpq URL.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from app.service.store import DB_WAIT_SECONDS, Store, StoreUnavailable, StoreUrlError

__all__ = ["open_store", "sqlite_path"]


def sqlite_path(url: str) -> str:
    """The file path (or ``:memory:``) in a ``sqlite:///…`` URL; raises ``StoreUrlError``."""
    rest = url.split("://", 1)[1]
    if "?" in rest or "#" in rest:
        raise StoreUrlError(url, "SQLite URLs take no options")
    if not rest.startswith("/"):
        raise StoreUrlError(url, "a SQLite URL needs three slashes and an absolute path (sqlite:///path)")
    path = unquote(rest)
    if path == "/:memory:":
        return ":memory:"
    if re.match(r"^/+[A-Za-z]:[/\\]", path):  # sqlite:///C:/Users/… (Windows)
        return path.lstrip("/")
    path = "/" + path.lstrip("/")
    if path == "/" or path.endswith("/"):
        raise StoreUrlError(url, "it names a directory, not a database file")
    return path


def open_store(url: str, *, pool_size: int | None = None, timeout: float = DB_WAIT_SECONDS) -> Store:
    """Open the store ``url`` names; ``StoreUrlError`` if malformed, ``StoreUnavailable`` if unreachable.
    ``timeout``: the longest any one database wait may take (``StoreTimeout`` beyond it)."""
    if not isinstance(url, str) or not url.strip():
        raise StoreUrlError(str(url or ""), "it is empty")
    url = url.strip()
    if "://" not in url:
        raise StoreUrlError(url, "it has no scheme (sqlite:// or postgresql://)")
    scheme = url.split("://", 1)[0].lower()
    if scheme == "sqlite":
        from app.service.storage.sqlite import SQLiteStore

        return SQLiteStore(sqlite_path(url), url=url, pool_size=pool_size or 8, timeout=timeout)
    if scheme in ("postgresql", "postgres"):
        try:
            from app.service.storage.postgres import PostgresStore
        except ImportError as exc:  # pragma: no cover - psycopg is a dependency
            raise StoreUnavailable(url, f"the PostgreSQL driver is not installed ({exc})",
                                   "reinstall Spine Desk with its dependencies") from exc
        return PostgresStore(url, pool_size=pool_size or 10, timeout=timeout)
    raise StoreUrlError(url, f"unknown scheme {scheme!r}")
