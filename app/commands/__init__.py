"""Command implementations. Each takes already-constructed objects from ``app.__main__`` and an output stream."""
