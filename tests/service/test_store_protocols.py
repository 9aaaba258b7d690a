"""The composed stores implement the core storage protocol and every feature's (the protocols replaced an abstract
base class, so nothing else checks that a method a feature relies on exists with the signature it expects)."""

from __future__ import annotations

import inspect

import pytest

from app.service.cpis.store import CpisStore
from app.service.flags.store import FlagStore
from app.service.pds.store import PdsStore
from app.service.scr.store import ScrStore
from app.service.storage.composed import SqlStore
from app.service.storage.sqlite import SQLiteStore
from app.service.store import Store

PROTOCOLS = (Store, PdsStore, ScrStore, CpisStore, FlagStore)


def _members(protocol: type) -> dict[str, object]:
    return {name: value for name, value in vars(protocol).items()
            if callable(value) and (not name.startswith("_") or name in ("__enter__", "__exit__"))}


def _stores() -> list[type]:
    stores: list[type] = [SQLiteStore]
    try:
        from app.service.storage.postgres import PostgresStore
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return stores
    return [*stores, PostgresStore]


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda p: p.__name__)
@pytest.mark.parametrize("store", _stores(), ids=lambda s: s.__name__)
def test_every_protocol_method_is_implemented_with_its_signature(store: type, protocol: type) -> None:
    assert issubclass(store, SqlStore)
    for name, member in _members(protocol).items():
        implementation = getattr(store, name, None)
        assert implementation is not None, f"{store.__name__} lacks {protocol.__name__}.{name}"
        assert not getattr(implementation, "__isabstractmethod__", False), f"{store.__name__}.{name} is abstract"
        wanted = list(inspect.signature(member).parameters)  # type: ignore[arg-type]
        got = list(inspect.signature(implementation).parameters)
        assert got == wanted, f"{store.__name__}.{name}{got} differs from {protocol.__name__}.{name}{wanted}"


def test_the_feature_protocols_do_not_overlap() -> None:
    """Each method belongs to one protocol: a feature's store interface is its own."""
    seen: dict[str, str] = {}
    for protocol in PROTOCOLS:
        for name in _members(protocol):
            if name.startswith("__"):
                continue
            assert name not in seen, f"{name} is in both {seen[name]} and {protocol.__name__}"
            seen[name] = protocol.__name__
