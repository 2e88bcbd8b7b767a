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

from atoll._registry import lazy_exports

__all__ = ["LocalContainerManager"]

__getattr__ = lazy_exports(__name__, {"LocalContainerManager": "atoll.containers.local.manager"})
