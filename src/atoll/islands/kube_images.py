"""The images of the islands on Kubernetes: the swarm islands' images, pushed to ``docker.target_registry``.

Nodes pull images, so an island runs ``<registry>/atoll/isle-<name>@sha256:...``:
the image its swarm twin builds (the base image for the router, the recipe
images for db and files, ``atoll/isle-ui`` for the ui), tagged into the
registry and pushed once (an image whose ``RepoDigests`` already name the
registry is not pushed again). Built and pushed by the Docker engine Atoll
runs on, like project builds on this runtime.
"""

from __future__ import annotations

from atoll import __version__
from atoll.config import Config
from atoll.containers.base import LogSink
from atoll.errors import ConfigError
from atoll.islands.swarm import SwarmServiceIsland


def island_repository(config: Config, island: str) -> str:
    """``<docker.target_registry>/atoll/isle-<island>``.

    Raises:
        ConfigError: no target registry (the nodes could not pull the image).
    """
    registry = config.docker.target_registry
    if not registry:
        raise ConfigError(f"the {island} island on Kubernetes needs docker.target_registry: the nodes pull "
                          "its image from there")
    return f"{registry}/atoll/isle-{island}"


def push_island_image(config: Config, twin: SwarmServiceIsland, log: LogSink) -> tuple[str, float | None]:
    """``repo@sha256:...`` of the island's image in the target registry; and the build time (None: not built).

    Raises:
        ConfigError: no ``docker.target_registry``.
        ExecutionError: the build or the push failed.
        BackendUnavailableError: the Docker engine is down.
    """
    from atoll.containers.swarm.build import push_image, registry_auth
    from atoll.containers.swarm.engine import engine_errors

    repo = island_repository(config, twin.name)
    local, build_seconds = twin.ensure_image(log)
    client = twin.client
    with engine_errors(config, f"looking up {local}"):
        image = client.images.get(local)
    for digest in image.attrs.get("RepoDigests") or []:
        if str(digest).startswith(repo + "@sha256:"):
            return str(digest), build_seconds
    _, sep, tag = local.rpartition(":")
    if not sep or local.startswith("sha256:") or "/" in tag:  # an image id (the router runs the base image)
        tag = f"{__version__}-{str(image.id).removeprefix('sha256:')[:12]}"
    with engine_errors(config, f"tagging {repo}:{tag}"):
        image.tag(repo, tag)
    auth = registry_auth(config, None)  # from the chest store: the metadata store may be an island not up yet
    log(f"pushing {repo}:{tag}")
    return push_image(client, config, repo, tag, log, auth), build_seconds


__all__ = ["island_repository", "push_island_image"]
