"""The router island: where ``POST /predict?project=P&deploy=D`` reaches a replica.

On the ``local`` runtime it is a ``python -m atoll.router`` process on
``router.host:router.port`` reading the local discovery files, kept running
by a detached supervisor (state in ``$ATOLL_HOME/run/router/``, log
``$ATOLL_HOME/run/router.log``).

On ``swarm`` it is the service ``<ns>-router`` on the overlay network: it
runs ``python -m atoll.router --discovery dns`` from the base image (by id,
re-created when the base image changed: a new Atoll) and finds the replicas
of deployment D of project P as ``tasks.<ns>-P-D`` (port 8080), so it needs
no state from the host. Its port 8080 is published in host mode on
``router.port``. With ``router.tls_cert``/``tls_key`` the pair reaches the
service as two Docker secrets (``/run/secrets/router-tls.crt|key``), never
an environment value or an image layer.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

from filelock import FileLock

from atoll.config import REPLICA_SECRETS_FILE, RouterSection, atoll_home
from atoll.containers.base import LogSink, http_ok
from atoll.containers.spec import TASK_USER, task_user_group
from atoll.containers.local.process import kill_group, log_tail, pid_alive, read_json, write_json
from atoll.containers.swarm.engine import HEALTH_PROBE, SERVICE_PORT, service_healthcheck
from atoll.containers.swarm.images import base_image_current, ensure_base_image, image_id
from atoll.errors import BackendUnavailableError, ConfigError, NotFoundError
from atoll.islands.base import IslandStatus, LocalProcessIsland
from atoll.islands.swarm import SwarmServiceIsland
from atoll.task.meta import share_private_dir, share_private_file

START_TIMEOUT = 30.0
RESTART_LIMIT = 5  # restarts in a row (without STABLE_AFTER s of health) before the supervisor gives up
STABLE_AFTER = 10.0
#: Where the swarm router sees the API keys directory (bind-mounted read-only).
KEYS_MOUNT = "/atoll/router-keys"
#: The file names of the TLS pair under /run/secrets in the swarm router.
TLS_SECRETS = ("router-tls.crt", "router-tls.key")


def _auth_options(auth: bool, keys_file: Path) -> list[str]:
    """The router's API-key options (the keys file to check against, or ``--auth off``), and the
    replica secrets file next to the keys file (``config.router_replica_secrets_file``)."""
    secrets = ["--replica-secrets", str(keys_file.with_name(REPLICA_SECRETS_FILE))]
    return (["--keys-file", str(keys_file)] if auth else ["--auth", "off"]) + secrets


def _tls_options(router: RouterSection, cert: str | None = None, key: str | None = None) -> list[str]:
    """``--tls-cert``/``--tls-key`` when the router serves HTTPS (paths as the router sees them)."""
    if not router.tls:
        return []
    return ["--tls-cert", cert or str(router.tls_cert), "--tls-key", key or str(router.tls_key)]


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


class SwarmRouterIsland(SwarmServiceIsland):
    """The router as the swarm service ``<ns>-router``, finding replicas by DNS."""

    name: ClassVar[str] = "router"
    container_port: ClassVar[int] = SERVICE_PORT
    data_path: ClassVar[str | None] = None  # stateless
    stop_grace: ClassVar[float] = 5.0
    #: Every request fails while the router is down: restart it at once, as the local supervisor does (0.1 s).
    restart_delay: ClassVar[float] = 0.1
    section: ClassVar[str] = "router"
    port_setting: ClassVar[str] = "port"

    @property
    def service_name(self) -> str:
        return f"{self.namespace}-router"

    @property
    def url(self) -> str:
        return self.config.router.url

    def probe(self) -> bool:
        return http_ok(f"{self.url}/health")

    def command(self) -> list[str]:
        keys = Path(KEYS_MOUNT) / self.config.router_keys_file.name
        return [
            "python", "-m", "atoll.router", "--host", "0.0.0.0", "--port", str(SERVICE_PORT),
            "--discovery", "dns", "--dns-pattern", f"tasks.{self.namespace}-{{project}}-{{deployment}}",
            "--dns-port", str(SERVICE_PORT), *_auth_options(self.config.router.auth, keys),
            *_tls_options(self.config.router, f"/run/secrets/{TLS_SECRETS[0]}", f"/run/secrets/{TLS_SECRETS[1]}"),
        ]

    def secrets(self) -> dict[str, bytes]:
        """The TLS pair, when configured (read here, handed to the engine as Docker secrets)."""
        router = self.config.router
        if not router.tls:
            return {}
        try:
            return {TLS_SECRETS[0]: Path(str(router.tls_cert)).read_bytes(),
                    TLS_SECRETS[1]: Path(str(router.tls_key)).read_bytes()}
        except OSError as exc:
            raise ConfigError(f"router TLS: cannot read {exc.filename}: {exc.strerror}") from None

    def secrets_names(self) -> tuple[str, ...]:
        return TLS_SECRETS

    def bind_mounts(self) -> list[tuple[str, str]]:
        # The keys directory, read-only: `atoll key new/rm` rewrite the file in it and the router
        # re-reads it. A bind mount reaches the node Atoll runs on only (single-node swarm).
        keys_dir = self.config.router_keys_file.parent
        keys_dir.mkdir(parents=True, exist_ok=True)
        group = task_user_group()
        share_private_dir(keys_dir, group)
        if group is not None:  # files an older Atoll wrote 0600: the router reads them as that group
            for path in (self.config.router_keys_file, self.config.router_replica_secrets_file):
                if path.exists():
                    share_private_file(path, group)
        return [(KEYS_MOUNT, str(keys_dir))]

    def run_as(self) -> tuple[int, int]:
        """Never root: the user Atoll runs as (the owner of the 0700 keys directory the router
        reads), or ``TASK_USER`` when Atoll runs as root (the directory is then 0750 for its group)."""
        return TASK_USER if task_user_group() is not None else (os.geteuid(), os.getegid())

    def healthcheck(self) -> Any:
        check = service_healthcheck(self.config)
        if self.config.router.tls:  # the same probe over TLS (not verified: liveness of this very task)
            check["Test"] = ["CMD", "python", "-c", HEALTH_PROBE.replace("http://", "https://").replace(
                "timeout=2)", "timeout=2, context=__import__('ssl')._create_unverified_context())")]
        return check

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
