"""The ``swarm`` container manager: builds are images, tasks run on a Docker engine / Swarm.

``container_manager.type: swarm``. One module per part:

    engine      the one Docker engine layer (connection, error translation, names, labels),
                shared with the native islands
    images      the Atoll base image (``atoll image build-base``)
    build       project images (built, pushed, or pulled ``--pre-built``)
    stage       the task layout on the host + the mounts that deliver it
    tasks       trainings and the IDE as one-off containers
    services    deployments as replicated swarm services
    manager     :class:`SwarmContainerManager`, the plug-point class
"""

from atoll.containers.swarm.manager import SwarmContainerManager

__all__ = ["SwarmContainerManager"]
