"""Service settings made of positive numbers that an operator changes with ``NAME=VALUE`` on the command line.

A frozen dataclass mixes in :class:`Tunables` and names its typed error in ``error``: every field must be a positive
int or float, and :meth:`Tunables.with_overrides` applies ``NAME=VALUE`` strings (``-`` and ``_`` alike in NAME),
raising that error with the setting's name and what is wrong.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, Self

from app.errors import AppError


class Tunables:
    error: ClassVar[Callable[[str, str], AppError]]

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]  # mixed into dataclasses only
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise type(self).error(f.name, f"must be a positive number, not {value!r}")

    def with_overrides(self, settings: list[str]) -> Self:
        """A copy with ``NAME=VALUE`` settings applied."""
        kinds = {f.name: f.type for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        changes: dict[str, Any] = {}
        for setting in settings:
            name, sep, text = setting.partition("=")
            name = name.strip().replace("-", "_")
            if not sep or name not in kinds:
                raise type(self).error(setting, f"expected NAME=VALUE with NAME one of {', '.join(kinds)}")
            try:
                changes[name] = float(text) if kinds[name] == "float" else int(text)
            except ValueError:
                raise type(self).error(name, f"{text!r} is not a {kinds[name]}") from None
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]
