"""Container managers: where builds, trainings, deployments and the IDE run."""

from atoll.containers.base import ContainerManager, get_container_manager

__all__ = ["ContainerManager", "get_container_manager"]
