"""What a training leaves in the file store, by key.

The runner writes these keys; the API reads and deletes them.
"""

from __future__ import annotations


def output_key(proj: str, name: str) -> str:
    """File-store key of a training's executed notebook."""
    return f"trainings/{proj}/{name}/output.ipynb"


__all__ = ["output_key"]
