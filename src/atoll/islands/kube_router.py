"""The router island on Kubernetes (``atoll isle router setup|status|stop``).

``router.replicas`` pods (default 2) of a Deployment behind the Service
``<namespace>-isle-router``: each has a readiness probe on ``/health``, so the
Service sends traffic to ready pods only; they are spread over nodes where the
scheduler can (preferred pod anti-affinity); a rolling update never has fewer
than ``router.replicas`` ready (``maxUnavailable: 0``, ``maxSurge: 1``); with
more than one pod a PodDisruptionBudget (``minAvailable: 1``) keeps one through
node drains. A killed router container is restarted by its kubelet (after its
crash-loop back-off) while the other pods keep serving; ``status`` says
``1/2 ready`` and which pod is down.

Every pod mounts the same Secret ``<namespace>-isle-router-keys`` (API keys and
replica secrets) as a directory: :func:`~atoll.islands.kubernetes.publish_router_secrets`
updates the Secret, each pod's kubelet swaps the files in (atomically, within
its sync period, about a minute) and each router re-reads a file whose inode,
mtime or size changed (:mod:`atoll._http.keys`). A new replica secret also
rolls every pod over at the ``depl new``'s setup (the pod template carries its
digest), sooner than that refresh.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from atoll.containers.kubernetes import island_manifests as manifests
from atoll.containers.kubernetes.objects import Manifest
from atoll.errors import ConfigError
from atoll.islands.kubernetes import KubeIsland
from atoll.islands.router_keys import replica_secrets_document
from atoll.islands.router_swarm import SwarmRouterIsland
from atoll.islands.swarm import SwarmServiceIsland


class KubeRouterIsland(KubeIsland):
    """The router: ``router.replicas`` pods (Deployment) behind a Service, the API keys as a Secret mounted
    read-only, a PodDisruptionBudget with more than one pod."""

    name: ClassVar[str] = "router"
    twin_class: ClassVar[type[SwarmServiceIsland]] = SwarmRouterIsland
    extra_kinds: ClassVar[tuple[str, ...]] = ("PodDisruptionBudget",)

    def address(self, host: str, port: int) -> str:
        return f"{'https' if self.config.router.tls else 'http'}://{host}:{port}"

    def manifests(self, image: str) -> list[Manifest]:
        keys = b""
        if self.config.router.auth:
            path = self.config.router_keys_file
            if not path.is_file():
                raise ConfigError(f"the router's API keys file {path} is missing: `atoll isle router setup` "
                                  "writes it from the metadata store")
            keys = path.read_bytes()
        return manifests.router_manifests(self.config, image, keys, replica_secrets_document(self.config),
                                          self._tls_pair())

    def _tls_pair(self) -> tuple[bytes, bytes]:
        """The PEM files of ``router.tls_cert``/``tls_key`` (empty when TLS is off)."""
        router = self.config.router
        if not router.tls:
            return b"", b""
        try:
            return Path(str(router.tls_cert)).read_bytes(), Path(str(router.tls_key)).read_bytes()
        except OSError as exc:
            raise ConfigError(f"router TLS: cannot read {exc.filename}: {exc.strerror}") from None


__all__ = ["KubeRouterIsland"]
