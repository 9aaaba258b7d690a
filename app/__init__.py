"""Spine Desk: a desktop smartcard client for NHS England's Spine, and the Spine service layer it ships with."""

__version__ = "0.1.0"
