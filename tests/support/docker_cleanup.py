"""Removing, by exact name, what a Docker test created (never by a broad match)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from docker import DockerClient


def remove_by_name(
    client: DockerClient,
    namespace: str,
    *,
    services: Iterable[str],
    containers: Iterable[str] = (),
    volumes: Iterable[str] = (),
    images: Iterable[str] = (),
) -> None:
    """Remove the named services, containers, volumes and images, the secrets and configs
    labelled with ``namespace`` and the overlay network ``namespace``; missing ones are fine.

    Services go first and their containers are awaited (60 s at most), because
    secrets, volumes and the network stay busy while a container uses them.
    """
    from docker.errors import APIError, NotFound

    services = list(services)
    for name in services:
        try:
            client.services.get(name).remove()
        except (NotFound, APIError):
            pass
    for name in containers:
        try:
            client.containers.get(name).remove(force=True)
        except (NotFound, APIError):
            pass
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(
        # ignore_removed: a container gone between the listing and its inspection is not an error
        client.containers.list(
            all=True, filters={"label": f"com.docker.swarm.service.name={s}"}, ignore_removed=True
        )
        for s in services
    ):
        time.sleep(0.5)
    labelled = {"label": f"io.atoll.namespace={namespace}"}
    for secret in [*client.secrets.list(filters=labelled), *client.configs.list(filters=labelled)]:
        try:
            secret.remove()
        except (NotFound, APIError):
            pass
    for volume in volumes:
        _retry(partial(_remove_volume, client, volume), pause=0.5)
    _retry(lambda: client.networks.get(namespace).remove(), pause=1)
    for image in images:
        try:
            client.images.remove(image)
        except (NotFound, APIError):
            pass


def _remove_volume(client: DockerClient, name: str) -> None:
    client.volumes.get(name).remove(force=True)


def _retry(remove: Callable[[], object], pause: float, attempts: int = 20) -> None:
    """Call ``remove`` until it succeeds or finds nothing; busy (APIError) means wait and retry."""
    from docker.errors import APIError, NotFound

    for _ in range(attempts):
        try:
            remove()
            return
        except NotFound:
            return
        except APIError:
            time.sleep(pause)
