"""Replaying recorded command outputs, and a PC/SC system stand-in, for the platform probe tests."""

from __future__ import annotations

from collections.abc import Sequence

from app.card.pcsc import ReaderState
from app.errors import PcscUnavailable
from tests.support.wes.harness import FIXTURES
from wes.probes.commands import CommandFailed


class Recorded:
    """A Runner: argv → the recorded output file for it (or CommandFailed), and a log of what ran."""

    def __init__(self, platform: str, outputs: dict[tuple[str, ...], str | Exception]) -> None:
        self.platform, self.outputs, self.ran = platform, outputs, []

    def __call__(self, argv: Sequence[str], timeout: float) -> str:
        key = tuple(argv)
        self.ran.append(key)
        if key not in self.outputs:
            raise CommandFailed(f"{argv[0]} is not installed")
        out = self.outputs[key]
        if isinstance(out, Exception):
            raise out
        return (FIXTURES / self.platform / out).read_bytes().decode("utf-8")


class FakePcscSystem:
    def __init__(self, states: list[ReaderState] | None = None, down: bool = False) -> None:
        self.states, self.down = states or [], down

    def reader_states(self) -> list[ReaderState]:
        if self.down:
            raise PcscUnavailable("establish context: Service not available. (0x8010001D)")
        return self.states
