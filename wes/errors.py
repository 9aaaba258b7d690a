"""Errors that stop the checker from running at all (a check that fails is a result, not an error)."""

from __future__ import annotations

from app.errors import AppError


class WesError(AppError):
    """The WES checker could not run."""


class SpecError(WesError):
    """A WES specification file is missing or invalid; names the file and the field."""

    def __init__(self, file: str, field: str, problem: str) -> None:
        where = f"{file}: {field}" if field else file
        super().__init__(f"WES specification {where}: {problem}")
        self.file, self.field, self.problem = file, field, problem


class WaiverError(WesError):
    """The waivers file is invalid; names the file and the entry."""

    def __init__(self, file: str, field: str, problem: str) -> None:
        super().__init__(f"WES waivers file {file}: {field}: {problem}")
        self.file, self.field, self.problem = file, field, problem
