"""Islands: the services Atoll runs next to the tasks (``atoll isle <name> setup|status|stop``).

A small registry by name. On the local runtime the only island is the
``router``: a detached ``python -m atoll.router`` process on
``router.host:router.port`` reading the local discovery files, with its pid
file and log under ``$ATOLL_HOME/run/``. The ``db``, ``files`` and
``registry`` islands are swarm services (:mod:`atoll.islands`), registered
here through :class:`NativeIsland`.
"""

from __future__ import annotations

import importlib
import logging
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atoll.api.context import AtollContext
from atoll.api.keys import export_keys
from atoll.config import atoll_home
from atoll.containers._process import (
    kill_group,
    log_tail,
    pid_alive,
    proc_start_time,
    read_json,
    write_json,
)
from atoll.containers.base import http_ok
from atoll.errors import BackendUnavailableError, NotFoundError, UsageError
from atoll.islands import ISLAND_CLASSES

log = logging.getLogger(__name__)

START_TIMEOUT = 30.0


@dataclass
class IslandStatus:
    """What ``isle <name> status`` shows."""

    name: str
    running: bool
    url: str | None = None
    pid: int | None = None
    log: str | None = None
    message: str = ""
    health: str | None = None  # swarm-service islands: healthy | starting | unhealthy | stopped
    service: str | None = None  # swarm-service islands: the service name
    volume: str | None = None  # swarm-service islands: the data volume `stop` keeps
    seconds: float | None = None  # how long setup took


class Island(ABC):
    """One service Atoll runs for the user."""

    name: str = "abstract"

    def __init__(self, ctx: AtollContext) -> None:
        self.ctx = ctx

    @abstractmethod
    def setup(self) -> IslandStatus:
        """Start the island unless it runs; return its status (``message`` says which).

        Raises:
            BackendUnavailableError: it did not start (with its log tail).
        """

    @abstractmethod
    def status(self) -> IslandStatus:
        """Whether it runs, and where."""

    @abstractmethod
    def stop(self) -> IslandStatus:
        """Stop it (not running is not an error)."""


class LocalRouterIsland(Island):
    """The router as a detached local process."""

    name = "router"

    @property
    def _pid_file(self) -> Path:
        return atoll_home() / "run" / "router.pid"

    @property
    def _log_file(self) -> Path:
        return atoll_home() / "run" / "router.log"

    @property
    def url(self) -> str:
        router = self.ctx.config.router
        return f"http://{router.host}:{router.port}"

    def _running(self) -> dict[str, int] | None:
        info = read_json(self._pid_file)
        if info and pid_alive(info.get("pid"), info.get("start_time")):
            return info
        return None

    def status(self) -> IslandStatus:
        info = self._running()
        if info is None:
            return IslandStatus(self.name, False, message="the router is not running")
        healthy = http_ok(f"{info.get('url', self.url)}/health")
        return IslandStatus(
            self.name,
            True,
            url=str(info.get("url", self.url)),
            pid=int(info["pid"]),
            log=str(self._log_file),
            message="the router is running" if healthy else "the router runs but does not answer /health",
        )

    def setup(self) -> IslandStatus:
        if self._running() is not None:
            status = self.status()
            status.message = f"the router is already running at {status.url}"
            return status
        router = self.ctx.config.router
        state_dir = atoll_home() / "run" / "deployments"
        state_dir.mkdir(parents=True, exist_ok=True)
        auth = ["--keys-file", str(self.ctx.config.router_keys_file)] if router.auth else ["--auth", "off"]
        argv = [
            sys.executable, "-m", "atoll.router",
            "--host", router.host, "--port", str(router.port),
            "--discovery", "local", "--state-dir", str(state_dir), *auth,
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
                return IslandStatus(self.name, True, self.url, proc.pid, str(self._log_file),
                                    f"the router is running at {self.url}")
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
        return IslandStatus(self.name, False, message=message)


class NativeIsland(Island):
    """Adapter for the swarm-service islands of :mod:`atoll.islands` (db, files, registry).

    They need a Docker engine in swarm mode but not the swarm container
    manager, so they are registered for the ``local`` runtime too.
    """

    target: str = ""  # "module:Class" in atoll.islands

    def _impl(self) -> Any:
        module_name, _, class_name = self.target.partition(":")
        return getattr(importlib.import_module(module_name), class_name)(self.ctx.config)

    def setup(self) -> IslandStatus:
        return _from_state(self._impl().setup())

    def status(self) -> IslandStatus:
        return _from_state(self._impl().status())

    def stop(self) -> IslandStatus:
        return _from_state(self._impl().stop())


def _from_state(state: Any) -> IslandStatus:
    return IslandStatus(state.name, state.running, url=state.url, message=state.message, health=state.health,
                        service=state.service, volume=state.volume, seconds=state.seconds)


def _native_island(name: str, target: str) -> type[Island]:
    return type(f"Native{name.title()}Island", (NativeIsland,), {"name": name, "target": target})


# name -> {container manager type -> class}
ISLANDS: dict[str, dict[str, type[Island]]] = {
    "router": {"local": LocalRouterIsland},
}
for _name, _target in ISLAND_CLASSES.items():
    _cls = _native_island(_name, _target)
    ISLANDS[_name] = {"local": _cls, "swarm": _cls}
# The router on swarm: a service on the overlay network finding replicas by DNS.
ISLANDS["router"]["swarm"] = _native_island("router", "atoll.containers.swarm_router:SwarmRouterIsland")


def get_island(ctx: AtollContext, name: str) -> Island:
    """The island ``name`` for the configured container manager.

    Raises:
        NotFoundError: no island of that name.
        UsageError: the island does not exist on this runtime (yet).
    """
    kinds = ISLANDS.get(name)
    if kinds is None:
        raise NotFoundError(f"no island {name!r}; islands: {', '.join(sorted(ISLANDS))}")
    manager = ctx.config.container_manager.type
    cls = kinds.get(manager)
    if cls is None:
        raise UsageError(f"the {name} island is not available on the {manager!r} runtime")
    return cls(ctx)


def setup_island(ctx: AtollContext, name: str) -> IslandStatus:
    island = get_island(ctx, name)
    if name == "router":
        _router_keys(ctx)
    return island.setup()


def _router_keys(ctx: AtollContext) -> None:
    """Write the keys file a router about to start reads; warn when auth is off."""
    if ctx.config.router.auth:
        export_keys(ctx)
    else:
        log.warning("router.auth is off: anyone who reaches the router can call every deployment")


def island_status(ctx: AtollContext, name: str) -> IslandStatus:
    return get_island(ctx, name).status()


def stop_island(ctx: AtollContext, name: str) -> IslandStatus:
    return get_island(ctx, name).stop()


def ensure_router(ctx: AtollContext) -> IslandStatus | None:
    """Start the router island when the runtime has one and it is not running."""
    kinds = ISLANDS["router"]
    if ctx.config.container_manager.type not in kinds:
        return None
    return setup_island(ctx, "router")


__all__ = [
    "ISLANDS",
    "Island",
    "IslandStatus",
    "LocalRouterIsland",
    "NativeIsland",
    "ensure_router",
    "get_island",
    "island_status",
    "setup_island",
    "stop_island",
]
