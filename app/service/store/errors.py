"""Typed storage errors. Messages are whole clauses that say what to do; ``app.error_text.user_text`` adds the stop."""

from __future__ import annotations

import re

from app.errors import AppError

_URL_FORMS = ("sqlite:///absolute/path/to/spinedesk.db, sqlite:///:memory: (tests only) or "
              "postgresql://user:password@host:5432/dbname")


def mask_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (for messages and logs)."""
    masked = re.sub(r"(://[^:/@?#]*:)[^@/?#]*@", r"\1***@", url)
    return re.sub(r"(?i)(password=)[^&\s]*", r"\1***", masked)


class StoreError(AppError):
    """Anything that went wrong in the service's database layer."""


class StoreUrlError(StoreError):
    """A ``--database`` URL that cannot be used: wrong scheme, missing path, unsupported option."""

    def __init__(self, url: str, problem: str) -> None:
        super().__init__(f"the database URL {mask_url(url)!r} cannot be used: {problem}. "
                         f"Give --database as {_URL_FORMS}")
        self.url = mask_url(url)
        self.problem = problem


class StoreUnavailable(StoreError):
    """The database could not be opened or reached (server down, wrong credentials, unwritable file)."""

    def __init__(self, url: str, detail: str, hint: str = "") -> None:
        hint = hint or ("check that the database server is running and reachable, and that the user, "
                        "password and database name in the URL are right")
        super().__init__(f"cannot open the database {mask_url(url)}: {detail.strip()}; {hint}")
        self.url = mask_url(url)
        self.detail = detail.strip()
        self.hint = hint


class StoreTimeout(StoreUnavailable):
    """The database did not answer within the service's bound on one wait (a lock held elsewhere, no free
    connection, a statement that ran too long, a server restarting): the request is refused, to be retried."""

    def __init__(self, url: str, waited_for: str, seconds: float) -> None:
        super().__init__(url, f"{waited_for} took longer than {seconds:g} s",
                         "the database is busy or restarting; try again in a moment")
        self.waited_for = waited_for
        self.seconds = seconds


class SchemaError(StoreError):
    """The database schema cannot be brought to this program's version (too new, or a migration failed)."""

    def __init__(self, problem: str, *, found: int | None = None, supported: int | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.found = found
        self.supported = supported


class VersionConflict(StoreError):
    """A compare-and-swap update lost: the record is now at ``current_version`` (PDS: 409 RESOURCE_VERSION_MISMATCH)."""

    def __init__(self, key: str, expected_version: int, current_version: int) -> None:
        super().__init__(f"record {key} is at version {current_version}, not {expected_version}; "
                         "read it again and re-apply the change")
        self.key = key
        self.expected_version = expected_version
        self.current_version = current_version


class NotFound(StoreError):
    """The record an update or removal names does not exist."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"there is no {kind} {key!r}; check the identifier")
        self.kind = kind
        self.key = key


class AlreadyExists(StoreError):
    """An insert would duplicate a unique key (user id, role profile id, card UUID, certificate fingerprint, NHS
    user UUID). ``owner``: the user a credential already belongs to, when known."""

    def __init__(self, kind: str, key: str, *, owner: str | None = None) -> None:
        if owner is not None:
            super().__init__(f"the {kind} {key!r} is already registered to user {owner!r}; one person's identity "
                             "belongs to one user (deactivate or correct the other user first)")
        else:
            super().__init__(f"a {kind} {key!r} already exists; choose another or remove the existing one first")
        self.kind = kind
        self.key = key
        self.owner = owner
