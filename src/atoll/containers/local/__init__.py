"""The local container manager: tasks are processes on this machine.

Light on purpose (names are imported on first use), so the deployment
supervisor (``python -m atoll.containers.local.supervisor``) starts its
replicas without paying for the configuration and its pydantic models.

Modules: ``manager`` (the primitives of :class:`~atoll.containers.base.ContainerManager`),
``build`` (code snapshot + cached virtual environment), ``services`` (the
off-board side of deployments and the IDE), ``supervisor`` (the on-board
process keeping replicas running), ``balancer`` (the optional ``--port``
front) and ``process`` (process-group helpers).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["LocalContainerManager"]


def __getattr__(name: str) -> Any:
    if name != "LocalContainerManager":
        raise AttributeError(f"module 'atoll.containers.local' has no attribute {name!r}")
    value = importlib.import_module("atoll.containers.local.manager").LocalContainerManager
    globals()[name] = value
    return value
