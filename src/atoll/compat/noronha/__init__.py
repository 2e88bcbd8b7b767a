"""``noronha``: Noronha's notebook toolkit as module paths over :mod:`atoll.toolkit`.

Installed as the top-level package ``noronha`` in Atoll's base image and in
local build environments, so a notebook written for Noronha runs unchanged::

    from noronha.tools.shortcuts import data_path, model_path, tmp_path
    from noronha.tools.publish import Publisher
    from noronha.tools.serving import OnlinePredict, LazyModelServer

Thin on purpose: each name is Atoll's, under the path Noronha gave it, with
Noronha's parameter names where they differ. ``container_manager.noronha_compat:
false`` turns it off: tasks then get ``ATOLL_NORONHA_COMPAT=0`` and this import
fails saying so.
"""

from __future__ import annotations

import os

from atoll.task.layout import NORONHA_COMPAT_ENV

if os.environ.get(NORONHA_COMPAT_ENV) == "0":
    raise ImportError(
        "Atoll's Noronha compatibility is turned off (container_manager.noronha_compat: false), "
        "so `noronha` cannot be imported: import from atoll.toolkit instead, or turn it back on"
    )

__all__: list[str] = []
