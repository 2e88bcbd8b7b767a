"""The ui island: ``atoll isle ui setup|status|stop`` (``atoll ui`` kept running).

On ``local``: a detached ``python -m atoll.ui`` process on ``ui.host:ui.port``,
like the local router island: its state (pid, start time, URL and the token)
in ``$ATOLL_HOME/run/ui.json`` with mode 0600, its log in
``$ATOLL_HOME/run/ui.log``. The token reaches the process through that file,
never a command line or the environment.

On ``swarm``: the one-replica service ``<namespace>-isle-ui`` running
``python -m atoll.ui`` from ``atoll/isle-ui`` (the base image plus the ``ui``
extra), published ``mode=host`` on ``ui.port``. Its token is the treasure
chest ``atoll-ui`` of the home store (made on the first setup; remove the
chest to rotate it) and reaches the container as a Docker secret, as do the
store settings a task would get (:func:`atoll.backends.task_store_config`,
native islands by service name). Embedded stores (the SQLite file, the local
file directory) are bind-mounted read-write as tasks get them with ``host``
staging (:mod:`atoll.containers.swarm.stage`): the treasure-chest key next to
the database is masked, and this works on the node Atoll runs on only. The
service gets no Docker socket, so its pages show the records but not replica
health, logs or test predictions (they say so; ``atoll ui`` on the host shows them).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import re
import subprocess
import sys
import time
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import orjson

from atoll import __version__
from atoll.config import atoll_home
from atoll.containers.base import LogSink, http_ok
from atoll.containers.local.process import (
    kill_group, log_tail, pid_alive, proc_start_time, read_json, write_json,
)
from atoll.containers.swarm.engine import SERVICE_PORT
from atoll.containers.swarm.images import base_image_current, ensure_base_image, image_id, run_build
from atoll.containers.swarm.stage import blank_file, container_store_config, hand_over_stores, runtime_user
from atoll.credentials import home_chest, new_token
from atoll.errors import BackendUnavailableError, ConfigError
from atoll.islands.base import IslandStatus, LocalProcessIsland
from atoll.islands.swarm import LABEL_ISLAND, RESOURCES, SwarmServiceIsland

START_TIMEOUT = 30.0
#: What ``python -m atoll.ui`` imports beyond Atoll's own dependencies (the ``ui`` extra).
UI_MODULES = ("jinja2", "nbconvert", "starlette")


class LocalUiIsland(LocalProcessIsland):
    """``atoll ui`` as a detached local process."""

    name: ClassVar[str] = "ui"
    section: ClassVar[str] = "ui"

    @property
    def _state_file(self) -> Path:
        return atoll_home() / "run" / "ui.json"

    def _running(self) -> dict[str, Any] | None:
        info = read_json(self._state_file)
        if info and info.get("pid") and pid_alive(info.get("pid"), info.get("start_time")):
            return info
        return None

    def _status(self, info: dict[str, Any], message: str, healthy: bool = True) -> IslandStatus:
        return IslandStatus(self.name, True, url=f"{info['url']}/?token={info['token']}", pid=int(info["pid"]),
                            log=str(self._log_file), health="healthy" if healthy else "unhealthy", message=message)

    def status(self) -> IslandStatus:
        info = self._running()
        if info is None:
            return IslandStatus(self.name, False, message="the UI is not running", health="stopped")
        healthy = http_ok(f"{info['url']}/static/atoll.css", token=info["token"])
        return self._status(info, "the UI is running" if healthy else "the UI runs but does not answer", healthy)

    def setup(self) -> IslandStatus:
        info = self._running()
        if info is not None:
            return self._status(info, f"the UI is already running at {info['url']}")
        missing = [name for name in UI_MODULES if importlib.util.find_spec(name) is None]
        if missing:
            raise ConfigError(f"the UI needs {', '.join(missing)}: pip install 'atoll[ui]'")
        ui = self.config.ui
        state: dict[str, Any] = {"token": new_token(32), "url": self.url}
        write_json(self._state_file, state, mode=0o600)
        argv = [sys.executable, "-m", "atoll.ui", "--host", ui.host, "--port", str(ui.port),
                "--state-file", str(self._state_file)]
        with open(self._log_file, "ab") as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True, close_fds=True)
        state.update(pid=proc.pid, start_time=proc_start_time(proc.pid))
        write_json(self._state_file, state, mode=0o600)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self._state_file.unlink(missing_ok=True)
                raise BackendUnavailableError(f"the UI exited with code {proc.returncode}: {log_tail(self._log_file, 5)}")
            if http_ok(f"{self.url}/static/atoll.css", token=str(state["token"])):
                return self._status(state, f"the UI is running at {self.url}")
            time.sleep(0.1)
        kill_group(proc.pid, None)
        self._state_file.unlink(missing_ok=True)
        raise BackendUnavailableError(f"the UI did not answer on {self.url} within {START_TIMEOUT:g}s")

    def stop(self) -> IslandStatus:
        info = self._running()
        if info is not None:
            kill_group(int(info["pid"]), info.get("start_time"))
        self._state_file.unlink(missing_ok=True)
        return IslandStatus(self.name, False, message="the UI was stopped" if info else "the UI was not running",
                            health="stopped")


UI_CHEST = "atoll-ui"
TOKEN_SECRET = "atoll-ui-token.json"
STORES_SECRET = "atoll-ui-stores.json"
_UI_EXTRA = re.compile(r"""extra\s*==\s*["']ui["']""")


def ui_requirements() -> list[str]:
    """The ``ui`` extra's requirements (``starlette>=0.37``...), from Atoll's installed metadata."""
    try:
        lines = importlib.metadata.requires("atoll") or []
    except importlib.metadata.PackageNotFoundError:
        lines = []
    found = sorted({line.partition(";")[0].strip() for line in lines if _UI_EXTRA.search(line)})
    return found or list(UI_MODULES)


class SwarmUiIsland(SwarmServiceIsland):
    """``atoll ui`` as the swarm service ``<namespace>-isle-ui`` (see the module docstring)."""

    name: ClassVar[str] = "ui"
    container_port: ClassVar[int] = SERVICE_PORT
    data_path: ClassVar[str | None] = None  # reads the stores, keeps nothing
    stop_grace: ClassVar[float] = 5.0
    section: ClassVar[str] = "ui"
    port_setting: ClassVar[str] = "port"

    @property
    def url(self) -> str:
        return self.config.ui.url

    def token(self) -> str:
        """The UI's token, made on the first setup and kept in the home store's chest ``atoll-ui``."""
        return home_chest(self.config, UI_CHEST, "ui", lambda: new_token(32), "token of the ui island (atoll ui)")[1]

    @cached_property
    def _stores(self) -> tuple[dict[str, Any], list[tuple[str, str, bool]]]:
        """The store settings as the container sees them, and the bind mounts they need."""
        from atoll.backends import open_metadata_store, task_store_config

        metadata = open_metadata_store(self.config)
        try:
            settings = task_store_config(self.config, metadata, in_network=True)
        finally:
            metadata.close()
        return container_store_config(settings, blank_file())

    def secrets(self) -> dict[str, bytes]:
        return {TOKEN_SECRET: orjson.dumps({"token": self.token()}), STORES_SECRET: orjson.dumps(self._stores[0])}

    def secrets_names(self) -> tuple[str, ...]:
        return (TOKEN_SECRET, STORES_SECRET)

    def bind_mounts(self) -> list[tuple[str, str]]:
        return [(target, source) for source, target, read_only in self._stores[1] if read_only]

    def writable_bind_mounts(self) -> list[tuple[str, str]]:
        # SQLite writes its journal next to the database even to read: the directory cannot be read-only.
        return [(target, source) for source, target, read_only in self._stores[1] if not read_only]

    def run_as(self) -> tuple[int, int]:
        """The user Atoll runs as, or the base image's (never root), handed the embedded stores it writes."""
        user = runtime_user()
        hand_over_stores(self._stores[1], user, self._stores[0])
        return user

    def command(self) -> list[str]:
        return ["python", "-m", "atoll.ui", "--host", "0.0.0.0", "--port", str(SERVICE_PORT),
                "--state-file", f"/run/secrets/{TOKEN_SECRET}", "--store-config", f"/run/secrets/{STORES_SECRET}"]

    def probe(self) -> bool:
        return http_ok(f"{self.url}/static/atoll.css", token=self.token())

    def ensure_image(self, log: LogSink) -> tuple[str, float | None]:
        """``atoll/isle-ui:<version>-<hash>``: the current base image plus the ``ui`` extra, built when missing.

        The hash covers the base image's id, the recipe and the requirements, so a new Atoll rebuilds it.
        """
        started = time.monotonic()
        built = not base_image_current(self.client, self.config)
        base = ensure_base_image(self.client, self.config, log)
        base_id = image_id(self.client, self.config, base) or base
        requirements = ui_requirements()
        recipe = (RESOURCES / "ui.Dockerfile").read_bytes()
        digest = hashlib.sha256(b"\0".join([base_id.encode(), recipe, " ".join(requirements).encode()]))
        tag = f"atoll/isle-ui:{__version__}-{digest.hexdigest()[:10]}"
        if image_id(self.client, self.config, tag) is None:
            built = True
            run_build(self.client, self.config, log, what="the ui island image", path=str(RESOURCES),
                      dockerfile="ui.Dockerfile", tag=tag, labels={LABEL_ISLAND: self.name},
                      buildargs={"BASE_IMAGE": base, "UI_REQUIREMENTS": " ".join(requirements)})
        return tag, (time.monotonic() - started if built else None)

    def _status(self, running: bool, health: str | None, message: str, started: float | None = None) -> IslandStatus:
        status = super()._status(running, health, message, started)
        if running:  # as the local island: the URL to open, token included (the UI sets it as a cookie)
            status.url = f"{self.url}/?token={self.token()}"
        return status


__all__ = ["STORES_SECRET", "TOKEN_SECRET", "UI_CHEST", "LocalUiIsland", "SwarmUiIsland", "ui_requirements"]
