"""Container managers: where builds, trainings, deployments and the IDE run.

Light on purpose: names are imported on first use, so the deployment
supervisor (``python -m atoll.containers.local.supervisor``) starts its
replicas without paying for the configuration and its pydantic models.
"""

from __future__ import annotations

from atoll._registry import lazy_exports

_EXPORTS = {
    "ContainerManager": "atoll.containers.base",
    "get_container_manager": "atoll.containers.base",
}

__all__ = ["ContainerManager", "get_container_manager"]


__getattr__ = lazy_exports(__name__, _EXPORTS)
