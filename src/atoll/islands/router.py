"""The router island: where ``POST /predict?project=P&deploy=D`` reaches a replica.

On the ``local`` runtime it is a detached ``python -m atoll.router`` process
on ``router.host:router.port`` reading the local discovery files, with its
pid file and log under ``$ATOLL_HOME/run/``.

On ``swarm`` it is the service ``<ns>-router`` on the overlay network: it
runs ``python -m atoll.router --discovery dns`` from the base image (by id,
re-created when the base image changed: a new Atoll) and finds the replicas
of deployment D of project P as ``tasks.<ns>-P-D`` (port 8080), so it needs
no state from the host. Its port 8080 is published in host mode on
``router.port``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

from atoll.config import REPLICA_SECRETS_FILE, atoll_home
from atoll.containers.base import LogSink, http_ok
from atoll.containers.local.process import (
    kill_group,
    log_tail,
    pid_alive,
    proc_start_time,
    read_json,
    write_json,
)
from atoll.containers.swarm.engine import SERVICE_PORT, service_healthcheck
from atoll.containers.swarm.images import base_image_current, ensure_base_image, image_id
from atoll.errors import BackendUnavailableError, NotFoundError
from atoll.islands.base import Island, IslandStatus
from atoll.islands.swarm import SwarmServiceIsland

START_TIMEOUT = 30.0
#: Where the swarm router sees the API keys directory (bind-mounted read-only).
KEYS_MOUNT = "/atoll/router-keys"


def _auth_options(auth: bool, keys_file: Path) -> list[str]:
    """The router's API-key options (the keys file to check against, or ``--auth off``), and the
    replica secrets file next to the keys file (``config.router_replica_secrets_file``)."""
    secrets = ["--replica-secrets", str(keys_file.with_name(REPLICA_SECRETS_FILE))]
    return (["--keys-file", str(keys_file)] if auth else ["--auth", "off"]) + secrets


class LocalRouterIsland(Island):
    """The router as a detached local process."""

    name: ClassVar[str] = "router"

    @property
    def _pid_file(self) -> Path:
        return atoll_home() / "run" / "router.pid"

    @property
    def _log_file(self) -> Path:
        return atoll_home() / "run" / "router.log"

    @property
    def url(self) -> str:
        router = self.config.router
        return f"http://{router.host}:{router.port}"

    def _running(self) -> dict[str, Any] | None:
        info = read_json(self._pid_file)
        if info and pid_alive(info.get("pid"), info.get("start_time")):
            return info
        return None

    def status(self) -> IslandStatus:
        info = self._running()
        if info is None:
            return IslandStatus(self.name, False, message="the router is not running", health="stopped")
        url = str(info.get("url", self.url))
        healthy = http_ok(f"{url}/health")
        return IslandStatus(
            self.name, True, url=url, pid=int(info["pid"]), log=str(self._log_file),
            health="healthy" if healthy else "unhealthy",
            message="the router is running" if healthy else "the router runs but does not answer /health",
        )

    def setup(self) -> IslandStatus:
        if self._running() is not None:
            status = self.status()
            status.message = f"the router is already running at {status.url}"
            return status
        started = time.monotonic()
        router = self.config.router
        state_dir = atoll_home() / "run" / "deployments"
        state_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable, "-m", "atoll.router",
            "--host", router.host, "--port", str(router.port),
            "--discovery", "local", "--state-dir", str(state_dir), *_auth_options(self.config.router.auth,
                                                                                 self.config.router_keys_file),
        ]
        with open(self._log_file, "ab") as out:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True,
            )
        write_json(self._pid_file, {"pid": proc.pid, "start_time": proc_start_time(proc.pid), "url": self.url})
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self._pid_file.unlink(missing_ok=True)
                raise BackendUnavailableError(
                    f"the router exited with code {proc.returncode}: {log_tail(self._log_file, 5)}"
                )
            if http_ok(f"{self.url}/health"):
                return IslandStatus(self.name, True, url=self.url, pid=proc.pid, log=str(self._log_file),
                                    health="healthy", message=f"the router is running at {self.url}",
                                    seconds=round(time.monotonic() - started, 2))
            time.sleep(0.1)
        kill_group(proc.pid, None)
        self._pid_file.unlink(missing_ok=True)
        raise BackendUnavailableError(f"the router did not answer {self.url}/health within {START_TIMEOUT:g}s")

    def stop(self) -> IslandStatus:
        info = self._running()
        if info is not None:
            kill_group(int(info["pid"]), info.get("start_time"))
        self._pid_file.unlink(missing_ok=True)
        message = "the router was stopped" if info else "the router was not running"
        return IslandStatus(self.name, False, message=message, health="stopped")


class SwarmRouterIsland(SwarmServiceIsland):
    """The router as the swarm service ``<ns>-router``, finding replicas by DNS."""

    name: ClassVar[str] = "router"
    container_port: ClassVar[int] = SERVICE_PORT
    data_path: ClassVar[str | None] = None  # stateless
    stop_grace: ClassVar[float] = 5.0

    @property
    def service_name(self) -> str:
        return f"{self.namespace}-router"

    @property
    def port(self) -> int:
        return self.config.router.port

    @property
    def url(self) -> str:
        return f"http://{self.config.router.host}:{self.config.router.port}"

    def probe(self) -> bool:
        return http_ok(f"{self.url}/health")

    def command(self) -> list[str]:
        keys = Path(KEYS_MOUNT) / self.config.router_keys_file.name
        return [
            "python", "-m", "atoll.router", "--host", "0.0.0.0", "--port", str(SERVICE_PORT),
            "--discovery", "dns", "--dns-pattern", f"tasks.{self.namespace}-{{project}}-{{deployment}}",
            "--dns-port", str(SERVICE_PORT), *_auth_options(self.config.router.auth, keys),
        ]

    def bind_mounts(self) -> list[tuple[str, str]]:
        # The keys directory, read-only: `atoll key new/rm` rewrite the file in it and the router
        # re-reads it. A bind mount reaches the node Atoll runs on only (single-node swarm).
        keys_dir = self.config.router_keys_file.parent
        keys_dir.mkdir(parents=True, exist_ok=True)
        return [(KEYS_MOUNT, str(keys_dir))]

    def healthcheck(self) -> Any:
        return service_healthcheck(self.config)

    def ensure_image(self, log: LogSink) -> tuple[str, float | None]:
        """The base image's id (built first when missing or stale: ``atoll image build-base``)."""
        started = time.monotonic()
        built = not base_image_current(self.client, self.config)
        ref = ensure_base_image(self.client, self.config, log)
        found = image_id(self.client, self.config, ref)
        if found is None:
            raise NotFoundError(f"the base image {ref} vanished right after it was built")
        return found, (time.monotonic() - started if built else None)


__all__ = ["LocalRouterIsland", "SwarmRouterIsland"]
