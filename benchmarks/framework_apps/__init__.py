"""Candidate ASGI apps for ``benchmarks/framework_choice.py``; all share ``workload.py``."""
