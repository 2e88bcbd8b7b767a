"""``noronha.tools.serving``: the toolkit's prediction servers (:mod:`atoll.toolkit.serving`).

``OnlinePredict`` is the toolkit's as is. ``LazyModelServer`` is the toolkit's
(same ``predict_func, load_model_func, model_name=None, max_models=100``) with
the one default Noronha had otherwise: it answers the bare result (``enrich=False``).
"""

from __future__ import annotations

from typing import Any

from atoll.toolkit import serving as _serving
from atoll.toolkit.serving import OnlinePredict


class LazyModelServer(_serving.LazyModelServer):
    """The toolkit's lazy server, answering the bare result by default as Noronha's did."""

    def __init__(self, *args: Any, enrich: bool = False, **kwargs: Any) -> None:
        # The toolkit's signature (predict_func, load_model_func, model_name=None, max_models=100, ...).
        super().__init__(*args, enrich=enrich, **kwargs)


__all__ = ["LazyModelServer", "OnlinePredict"]
