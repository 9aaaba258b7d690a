"""Thin routes per service: parse, call the domain, answer. Each module has ``register(router, ctx)``."""
