"""Container managers: where builds, trainings, deployments and the IDE run.

Light on purpose: names are imported on first use, so the deployment
supervisor (``python -m atoll.containers.local.supervisor``) starts its
replicas without paying for the configuration and its pydantic models.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ContainerManager": "atoll.containers.base",
    "get_container_manager": "atoll.containers.base",
}

__all__ = ["ContainerManager", "get_container_manager"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'atoll.containers' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
