"""The router island on swarm: ``<ns>-router``, a service on the overlay network.

It runs ``python -m atoll.router --discovery dns`` from the base image and
finds the replicas of deployment D of project P as ``tasks.<ns>-P-D`` (port
8080), so it needs no state from the host. Its port 8080 is published in host
mode on ``router.port`` (the ingress mesh is not available everywhere); the
engine binds it to its default address (127.0.0.1 when dockerd runs with
``"ip": "127.0.0.1"``). The service runs the base image by id, and is
re-created when the base image changed (a new Atoll).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from atoll.config import Config
from atoll.containers.base import http_ok
from atoll.containers.images import ensure_base_image
from atoll.containers.swarm_engine import (
    HEALTH_PROBE,
    LABEL_KIND,
    LABEL_NAMESPACE,
    NS,
    SERVICE_PORT,
    connect,
    engine_errors,
    ensure_network,
    get_or_none,
    remove_service,
    wait_until,
)
from atoll.errors import BackendUnavailableError
from atoll.islands.base import IslandState

if TYPE_CHECKING:
    from docker import DockerClient

START_TIMEOUT = 120.0
#: Where the router container sees the API keys directory (bind-mounted read-only).
KEYS_MOUNT = "/atoll/router-keys"


class SwarmRouterIsland:
    """``atoll isle router setup|status|stop`` on the swarm runtime."""

    name = "router"

    def __init__(self, config: Config, client: DockerClient | None = None) -> None:
        self.config = config
        self._client = client

    @property
    def client(self) -> DockerClient:
        if self._client is None:
            self._client = connect(self.config)
        return self._client

    @property
    def service_name(self) -> str:
        return f"{self.config.container_manager.namespace}-router"

    @property
    def url(self) -> str:
        return f"http://{self.config.router.host}:{self.config.router.port}"

    def _service(self) -> Any:
        name = self.service_name
        return get_or_none(self.config, f"inspecting service {name}", lambda: self.client.services.get(name))

    def _state(self, running: bool, health: str, message: str, seconds: float | None = None) -> IslandState:
        return IslandState(self.name, running, health, self.url if running else None, self.service_name, "",
                           message, seconds)

    def status(self) -> IslandState:
        if self._service() is None:
            return self._state(False, "stopped", "the router is not running")
        healthy = http_ok(f"{self.url}/health")
        return self._state(True, "healthy" if healthy else "starting",
                           f"the router is running at {self.url}" if healthy else
                           "the router service exists but does not answer /health yet")

    def setup(self) -> IslandState:
        """Create the service unless it runs on the current base image; wait for /health."""
        started = time.monotonic()
        base = ensure_base_image(self.client, self.config, lambda line: None)
        with engine_errors(self.config, f"looking up {base}"):
            image = str(self.client.images.get(base).id)
        current = self._service()
        if current is not None:
            spec = current.attrs["Spec"]
            running_image = spec["TaskTemplate"]["ContainerSpec"]["Image"]
            published = [p.get("PublishedPort") for p in (spec.get("EndpointSpec") or {}).get("Ports") or []]
            command = spec["TaskTemplate"]["ContainerSpec"].get("Command")
            same = running_image == image and published == [self.config.router.port] and command == self._command()
            if same and wait_until(lambda: http_ok(f"{self.url}/health"), 30):
                return self._state(True, "healthy", f"the router is already running at {self.url}")
            self.stop()
        self._create(image)
        if not wait_until(lambda: http_ok(f"{self.url}/health"), START_TIMEOUT):
            tail = self._log_tail()
            self.stop()
            raise BackendUnavailableError(
                f"the router service did not answer {self.url}/health within {START_TIMEOUT:g}s: {tail}"
            )
        return self._state(True, "healthy", f"the router is running at {self.url}", time.monotonic() - started)

    def _create(self, image: str) -> None:
        from docker.types import EndpointSpec, Healthcheck, Mount, RestartPolicy, ServiceMode

        keys_dir = self.config.router_keys_file.parent
        keys_dir.mkdir(parents=True, exist_ok=True)  # the file itself comes with `atoll key new`
        ns = self.config.container_manager.namespace
        network = ensure_network(self.client, self.config)
        hc = self.config.container_manager.healthcheck
        labels = {LABEL_KIND: "island", LABEL_NAMESPACE: ns, "io.atoll.island": "router"}
        with engine_errors(self.config, f"creating service {self.service_name}"):
            self.client.services.create(
                image,
                self._command(),
                mounts=[Mount(KEYS_MOUNT, str(keys_dir), type="bind", read_only=True)],
                name=self.service_name,
                labels=labels,
                container_labels=labels,
                networks=[network],
                endpoint_spec=EndpointSpec(mode="dnsrr", ports={self.config.router.port: (SERVICE_PORT, "tcp", "host")}),
                mode=ServiceMode("replicated", replicas=1),
                init=True,
                healthcheck=Healthcheck(test=["CMD", "python", "-c", HEALTH_PROBE], interval=int(hc.interval * NS),
                                        timeout=int(hc.timeout * NS), retries=hc.retries,
                                        start_period=int(hc.start_period * NS)),
                restart_policy=RestartPolicy(condition="any", delay=2 * NS),
                stop_grace_period=5 * NS,
            )

    def _command(self) -> list[str]:
        ns = self.config.container_manager.namespace
        keys = self.config.router_keys_file
        auth = ["--keys-file", f"{KEYS_MOUNT}/{keys.name}"] if self.config.router.auth else ["--auth", "off"]
        return [
            "python", "-m", "atoll.router", "--host", "0.0.0.0", "--port", str(SERVICE_PORT),
            "--discovery", "dns", "--dns-pattern", f"tasks.{ns}-{{project}}-{{deployment}}",
            "--dns-port", str(SERVICE_PORT), *auth,
        ]

    def _log_tail(self) -> str:
        try:
            raw = self.client.api.service_logs(self.service_name, stdout=True, stderr=True, tail=10)
            return b"".join(raw).decode("utf-8", "replace").strip()
        except Exception:  # noqa: BLE001 - best effort for an error message
            return ""

    def stop(self) -> IslandState:
        if self._service() is None:
            return self._state(False, "stopped", "the router was not running")
        remove_service(self.client, self.config, self.service_name)
        return self._state(False, "stopped", "the router was stopped")


__all__ = ["SwarmRouterIsland"]
