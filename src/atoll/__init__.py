"""Atoll: notebooks in, recorded model versions and replicated prediction services out."""

from atoll.errors import AtollError

__version__ = "0.1.0"

__all__ = ["AtollError", "__version__"]
