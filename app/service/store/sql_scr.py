"""Summary Care Record: the SQL both stores share."""

# SQL text here is assembled only from this package's constants; every value is a bound parameter.

from __future__ import annotations

from .sql_effects import EffectsSql


class ScrSql(EffectsSql):
    pass
