"""Atoll's Python API: one module per subject. The CLI and router only call it."""

from atoll.api.context import AtollContext

__all__ = ["AtollContext"]
