"""An emulated cluster whose pods really run Atoll: what the end-to-end Kubernetes tests share.

:func:`pod_cluster` puts together, for one test module or class:

- a **registry**: Debian's ``docker-registry`` on a free loopback port
  (``docker.target_registry``), so builds are pushed and recorded as
  ``<registry>/atoll/<project>@sha256:...`` exactly as on a real cluster. The
  test kubelet starts the engine's copy of that ``image@digest`` (the very
  image pushed; it does not pull it again);
- the **stores**: the ``db`` (PostgreSQL) and ``files`` (S3) islands, set up as
  swarm services on their attachable overlay network ``<namespace>``
  (``metadata.native`` / ``file_store.native``; the Kubernetes islands are not
  wired yet). The manager hands the pods the islands' service names
  (``<namespace>-isle-db:5432``, ``http://<namespace>-isle-files:9000``);
  the test kubelet joins every pod container to that overlay network, standing
  in for the cluster network and its DNS. This host reaches the islands on
  their published loopback ports, as ``atoll`` does;
- the **cluster**: kmock's emulator over HTTP (:mod:`atoll.testing.kube_api`),
  the test control plane (:mod:`atoll.testing.kube_control`) and the Docker
  kubelet (:mod:`atoll.testing.kube_docker`), whose pod IPs are addresses on
  Docker's default bridge that this host reaches directly;
- an ``ATOLL_HOME`` whose ``atoll.yaml`` says ``container_manager.type:
  kubernetes`` with the emulator's kubeconfig.

Everything is removed by exact name at the end (islands, their volumes and
network, the kubelet's containers, the pushed image tags) and anything left
fails the test.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest
import yaml

from support.docker_cleanup import remove_by_name
from support.processes import free_port
from support.registry import serve_registry

if TYPE_CHECKING:
    from atoll.config import Config
    from atoll.testing.kube_api import EmulatedCluster
    from atoll.testing.kube_control import TestController
    from docker import DockerClient

PYTHON_IMAGE = os.environ.get("ATOLL_PYTHON_IMAGE", "python:3.11-slim")
ISLANDS = ("db", "files")


def unavailable(message: str) -> NoReturn:
    """Skip, or fail when the run requires Docker (``ATOLL_REQUIRE_DOCKER=1``, as in CI)."""
    if os.environ.get("ATOLL_REQUIRE_DOCKER") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def swarm_engine() -> DockerClient:
    """A client of the local engine, once it is an active swarm manager with the Python image."""
    try:
        from docker.errors import DockerException, ImageNotFound
        from requests import RequestException

        from docker import from_env
    except ImportError as exc:
        unavailable(f"Docker engine not reachable: python package missing ({exc})")
    try:
        client = from_env(timeout=120)
        client.ping()
    except (DockerException, RequestException, OSError) as exc:
        unavailable(f"Docker engine not reachable: {exc}")
    swarm = client.info().get("Swarm", {})
    if swarm.get("LocalNodeState") != "active" or not swarm.get("ControlAvailable"):
        client.close()
        unavailable("Docker swarm not active on this engine (the db and files islands need it); "
                    "run .ci/setup-docker")
    try:
        client.images.get(PYTHON_IMAGE)
    except ImageNotFound:
        client.close()
        unavailable(f"Docker image {PYTHON_IMAGE} missing; run .ci/setup-docker (builds it offline)")
    return client


@dataclass
class PodCluster:
    """The pieces of :func:`pod_cluster` (module docstring)."""

    client: DockerClient
    home: Path
    namespace: str
    registry: str
    env: dict[str, str]  # the environment of an `atoll` command run against this cluster
    emulated: EmulatedCluster
    controller: TestController
    kubelet_prefix: str
    images: list[str] = field(default_factory=list)  # tags to remove at the end

    def config(self, cwd: Path | None = None, **overrides: str) -> Config:
        from atoll.config import load_config

        return load_config(cwd or self.home, environ={**self.env, **overrides})

    def pod_containers(self) -> list[str]:
        from atoll.testing.kube_docker import LABEL

        found = self.client.containers.list(all=True, filters={"label": f"{LABEL}={self.kubelet_prefix}"})
        return sorted(c.name for c in found)


def _swarm_islands(env: dict[str, str], home: Path, verb: str) -> None:
    """``atoll isle db|files <verb>`` through the API, on the swarm runtime (same home and namespace)."""
    from atoll.api import islands
    from atoll.api.context import AtollContext
    from atoll.config import load_config

    ctx = AtollContext(load_config(home, environ={**env, "ATOLL_CONTAINER_MANAGER__TYPE": "swarm"}), cwd=home)
    try:
        for island in ISLANDS:
            if verb == "setup":
                status = islands.setup_island(ctx, island)
                assert (status.running, status.health) == (True, "healthy"), status
            else:
                islands.stop_island(ctx, island)
    finally:
        ctx.close()


@contextlib.contextmanager
def pod_cluster(tmp: Path, label: str) -> Iterator[PodCluster]:
    """The registry, the store islands and the emulated cluster running pods on Docker (module docstring)."""
    import atoll
    from atoll.testing.kube_api import EmulatedCluster
    from atoll.testing.kube_control import TestController
    from atoll.testing.kube_docker import DockerKubelet
    from kubernetes import config as kube_loader

    client = swarm_engine()
    suffix = secrets.token_hex(3)
    namespace = f"atoll-{label}{os.getpid() % 1000}{suffix}"
    prefix = f"atoll-kubelet-{suffix}"
    home = tmp / "home"
    home.mkdir(parents=True)
    (tmp / "registry").mkdir()
    images: list[str] = []  # what the builds tag locally: removed at the end
    try:
        with serve_registry(tmp / "registry") as registry, EmulatedCluster() as emulated:
            images.append(f"{registry}/atoll/base:{atoll.__version__}")
            kubeconfig = emulated.kubeconfig(tmp, namespace=namespace)
            (home / "atoll.yaml").write_text(yaml.safe_dump({
                "container_manager": {
                    "type": "kubernetes", "namespace": namespace, "api_timeout": 60,
                    "healthcheck": {"interval": 1, "start_period": 120},
                    "kubernetes": {"kubeconfig": str(kubeconfig), "create_namespace": True},
                },
                "metadata": {"native": True},
                "file_store": {"native": True},
                "islands": {"db_port": free_port(), "files_port": free_port(), "setup_timeout": 240},
                "router": {"port": free_port()},
                "docker": {"python_image": PYTHON_IMAGE, "target_registry": registry},
            }))
            # Only the home's atoll.yaml configures Atoll: no ATOLL_* variable of this process leaks in.
            env = {k: v for k, v in os.environ.items() if not k.startswith("ATOLL_")} | {"ATOLL_HOME": str(home)}
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv("ATOLL_HOME", str(home))  # atoll.credentials finds the chests' key there
                for key in [k for k in os.environ if k.startswith("ATOLL_") and k != "ATOLL_HOME"]:
                    patch.delenv(key)
                started = time.monotonic()
                _swarm_islands(env, home, "setup")
                print(f"\nislands set up in {time.monotonic() - started:.0f}s")
                reader = emulated_reader(kubeconfig)
                kubelet = DockerKubelet(client, reader, emulated.api.set_pod_log, tmp / "volumes", prefix,
                                        network=namespace)
                try:
                    with TestController(kube_loader.new_client_from_config(str(kubeconfig)), kubelet) as controller:
                        yield PodCluster(client, home, namespace, registry, env, emulated, controller, prefix, images)
                        assert not controller.errors, controller.errors[:3]
                finally:
                    kubelet.close()
                    _swarm_islands(env, home, "stop")
    finally:
        remove_by_name(client, namespace, services=[f"{namespace}-isle-{i}" for i in ISLANDS],
                       volumes=[f"{namespace}-isle-{i}-data" for i in ISLANDS], images=images)
        left = [c.name for c in client.containers.list(all=True) if c.name.startswith((f"{namespace}-", prefix))]
        left += [s.name for s in client.services.list() if s.name.startswith(f"{namespace}-")]
        left += [v.name for v in client.volumes.list() if v.name.startswith(f"{namespace}-")]
        client.close()
        assert left == [], f"left behind: {left}"


def emulated_reader(kubeconfig: Path) -> Any:
    """``(kind, namespace, name) -> object | None`` through the emulator's API (the kubelet's reads)."""
    import json

    from kubernetes.client import ApiException, CoreV1Api

    from kubernetes import config as kube_loader

    core = CoreV1Api(kube_loader.new_client_from_config(str(kubeconfig)))

    def read(kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        method = core.read_namespaced_secret if kind == "Secret" else core.read_namespaced_config_map
        try:
            return dict(json.loads(method(name, namespace, _preload_content=False).data))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    return read


__all__ = ["ISLANDS", "PYTHON_IMAGE", "PodCluster", "pod_cluster", "swarm_engine", "unavailable"]
