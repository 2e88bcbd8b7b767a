"""The router island: where ``POST /predict?project=P&deploy=D`` reaches a replica.

On the ``local`` runtime it is a ``python -m atoll.router`` process on
``router.host:router.port`` reading the local discovery files, kept running
by a detached supervisor (state in ``$ATOLL_HOME/run/router/``, log
``$ATOLL_HOME/run/router.log``). On ``swarm`` it is the service
``<ns>-router``: :mod:`atoll.islands.router_swarm`.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

from filelock import FileLock

from atoll.config import atoll_home
from atoll.containers.base import http_ok
from atoll.containers.local.process import kill_group, log_tail, pid_alive, read_json, write_json
from atoll.errors import BackendUnavailableError
from atoll.islands.base import IslandStatus, LocalProcessIsland
from atoll.islands.router_keys import KEYS_MOUNT, TLS_SECRETS
from atoll.islands.router_keys import auth_options as _auth_options
from atoll.islands.router_keys import tls_options as _tls_options
from atoll.islands.router_swarm import SwarmRouterIsland, refresh_swarm_router

START_TIMEOUT = 30.0
RESTART_LIMIT = 5  # restarts in a row (without STABLE_AFTER s of health) before the supervisor gives up
STABLE_AFTER = 10.0


class LocalRouterIsland(LocalProcessIsland):
    """The router as a local process kept running by a detached supervisor.

    The supervisor is the deployments' one (:mod:`atoll.containers.local.supervisor`)
    with a spec of a single "replica", the router, on ``router.port``: it restarts a
    router that exits (0.1 s, 0.2 s, 0.4 s... apart) and gives up after
    :data:`RESTART_LIMIT` restarts in a row without :data:`STABLE_AFTER` seconds of
    health, reporting why. Its files are in ``$ATOLL_HOME/run/router/``; the
    router's log is ``$ATOLL_HOME/run/router.log``.
    """

    name: ClassVar[str] = "router"
    section: ClassVar[str] = "router"

    @property
    def _run_dir(self) -> Path:
        return atoll_home() / "run" / "router"

    def _argv(self) -> list[str]:
        router = self.config.router
        state_dir = atoll_home() / "run" / "deployments"
        return [
            sys.executable, "-m", "atoll.router",
            "--host", router.host, "--port", str(router.port),
            "--discovery", "local", "--state-dir", str(state_dir),
            *_auth_options(router.auth, self.config.router_keys_file), *_tls_options(router),
        ]

    def _spec(self) -> dict[str, Any]:
        router = self.config.router
        probe = "127.0.0.1" if router.host in ("0.0.0.0", "::", "localhost") else router.host
        return {
            "project": "", "deployment": "router", "generation": 1, "command": self._argv(),
            "replicas": [{"name": "router", "index": 0, "task_dir": str(self._run_dir), "env": {},
                          "inherit_env": True, "host": probe, "port": router.port, "log": str(self._log_file)}],
            "port": None, "timeout": START_TIMEOUT,
            "healthcheck": {**self.config.container_manager.healthcheck.model_dump(), "tls": router.tls},
            "restart": {"backoff": 0.1, "limit": RESTART_LIMIT, "stable_after": STABLE_AFTER},
            "discovery": str(self._run_dir / "discovery.json"),
            "certificate": self._certificate(),
        }

    def _certificate(self) -> str | None:
        """The sha256 of the certificate file in use (a new pair behind the same paths restarts it)."""
        if not self.config.router.tls:
            return None
        try:
            return hashlib.sha256(Path(str(self.config.router.tls_cert)).read_bytes()).hexdigest()
        except OSError:
            return None  # the router reports the missing file when it starts

    def _supervisor(self) -> dict[str, Any] | None:
        info = read_json(self._run_dir / "supervisor.pid")
        return info if info and pid_alive(info.get("pid"), info.get("start_time")) else None

    def _router(self) -> dict[str, Any] | None:
        """The router process as the supervisor last reported it."""
        replicas = (read_json(self._run_dir / "status.json") or {}).get("replicas") or []
        return replicas[0] if replicas else None

    def status(self) -> IslandStatus:
        log = str(self._log_file)
        if self._supervisor() is None:
            gave_up = (read_json(self._run_dir / "status.json") or {}).get("gave_up")
            if gave_up:
                return IslandStatus(
                    self.name, False, log=log, health="down",
                    message=f"the router is down: {gave_up} (log: {log}); `atoll isle router setup` starts it",
                )
            return IslandStatus(self.name, False, message="the router is not running", health="stopped")
        router = self._router() or {}
        pid = router.get("pid") if pid_alive(router.get("pid"), router.get("start_time")) else None
        if pid is None:
            why = router.get("error") or "not started yet"
            return IslandStatus(
                self.name, False, log=log, health="down",
                message=f"the router is down ({why}); its supervisor is restarting it",
            )
        if not http_ok(f"{self.url}/health"):
            return IslandStatus(self.name, False, pid=int(pid), log=log, health="unhealthy",
                                message="the router runs but does not answer /health")
        return IslandStatus(self.name, True, url=self.url, pid=int(pid), log=log, health="healthy",
                            message="the router is running")

    def _lock(self) -> FileLock:
        """Held by setup and stop: two `depl new` at once start one router, not two."""
        (atoll_home() / "run").mkdir(parents=True, exist_ok=True)
        return FileLock(str(atoll_home() / "run" / ".router.lock"))

    def setup(self) -> IslandStatus:
        with self._lock():
            return self._setup()

    def _setup(self) -> IslandStatus:
        started = time.monotonic()
        if self._supervisor() is not None:
            spec = read_json(self._run_dir / "spec.json") or {}
            if (spec.get("command"), spec.get("certificate")) == (self._argv(), self._certificate()):
                status = self.status()
                if status.running:
                    status.message = f"the router is already running at {status.url}"
                    return status
            self._stop()  # another configuration (TLS, auth, port), or not serving: start afresh
        self._discard()
        self._run_dir.mkdir(parents=True, exist_ok=True)
        (atoll_home() / "run" / "deployments").mkdir(parents=True, exist_ok=True)
        write_json(self._run_dir / "spec.json", self._spec(), mode=0o600)
        with open(self._run_dir / "supervisor.log", "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "atoll.containers.local.supervisor", str(self._run_dir)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True,
            )
        deadline = time.monotonic() + START_TIMEOUT + 5
        while time.monotonic() < deadline:
            rollout = (read_json(self._run_dir / "status.json") or {}).get("rollout") or {}
            if rollout.get("state") == "done" and http_ok(f"{self.url}/health"):
                status = self.status()
                status.message = f"the router is running at {self.url}"
                status.seconds = round(time.monotonic() - started, 2)
                return status
            if rollout.get("state") == "failed" or proc.poll() is not None:
                why = str(rollout.get("error") or "its supervisor exited").partition("\n")[0]
                self._stop()
                raise BackendUnavailableError(f"the router did not start: {why}: {log_tail(self._log_file, 5)}")
            time.sleep(0.05)
        self._stop()
        raise BackendUnavailableError(f"the router did not answer {self.url}/health within {START_TIMEOUT:g}s")

    def stop(self) -> IslandStatus:
        with self._lock():
            return self._stop()

    def _stop(self) -> IslandStatus:
        running = self._supervisor() is not None or self._discard_legacy(check=True)
        self._discard()
        message = "the router was stopped" if running else "the router was not running"
        return IslandStatus(self.name, False, message=message, health="stopped")

    def _discard(self) -> None:
        """Stop the supervisor (which stops the router), any router it left behind, and a router
        started the old way (``run/router.pid``); remove the run state."""
        info = read_json(self._run_dir / "supervisor.pid")
        if info and info.get("pid"):
            kill_group(int(info["pid"]), info.get("start_time"), grace=10.0)
        router = self._router()
        if router and router.get("pid"):
            kill_group(int(router["pid"]), router.get("start_time"))
        self._discard_legacy()
        shutil.rmtree(self._run_dir, ignore_errors=True)

    def _discard_legacy(self, check: bool = False) -> bool:
        legacy = atoll_home() / "run" / "router.pid"
        info = read_json(legacy)
        alive = bool(info) and pid_alive(info.get("pid"), info.get("start_time"))  # type: ignore[union-attr]
        if not check:
            if alive:
                kill_group(int(info["pid"]), info.get("start_time"))  # type: ignore[index, union-attr]
            legacy.unlink(missing_ok=True)
        return alive


__all__ = ["KEYS_MOUNT", "TLS_SECRETS", "LocalRouterIsland", "SwarmRouterIsland", "refresh_swarm_router"]
