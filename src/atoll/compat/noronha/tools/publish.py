"""``noronha.tools.publish``: the toolkit's own :class:`~atoll.toolkit.publisher.Publisher`.

It takes Noronha's keywords itself (``src_path``, ``uses_dataset``,
``uses_pretrained``, ``pretrained_with``, ``lightweight``) and a path as its
first positional argument. It returns the version record (a dict whose keys also
read as attributes), not a document.
"""

from __future__ import annotations

from atoll.toolkit.publisher import Publisher

__all__ = ["Publisher"]
