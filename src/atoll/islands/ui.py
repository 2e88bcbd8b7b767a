"""The ui island on the local runtime: ``atoll isle ui setup|status|stop``.

A detached ``python -m atoll.ui`` process on ``ui.host:ui.port``, like the
local router island: its state (pid, start time, URL and the token) in
``$ATOLL_HOME/run/ui.json`` with mode 0600, its log in
``$ATOLL_HOME/run/ui.log``. The token reaches the process through that file,
never a command line or the environment.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

from atoll.config import atoll_home
from atoll.containers.base import http_ok
from atoll.containers.local.process import kill_group, log_tail, pid_alive, proc_start_time, read_json, write_json
from atoll.credentials import new_token
from atoll.errors import BackendUnavailableError, ConfigError
from atoll.islands.base import Island, IslandStatus

START_TIMEOUT = 30.0
#: What ``python -m atoll.ui`` imports beyond Atoll's own dependencies (the ``ui`` extra).
UI_MODULES = ("jinja2", "nbconvert", "starlette")


class LocalUiIsland(Island):
    """``atoll ui`` as a detached local process."""

    name: ClassVar[str] = "ui"

    @property
    def _state_file(self) -> Path:
        return atoll_home() / "run" / "ui.json"

    @property
    def _log_file(self) -> Path:
        return atoll_home() / "run" / "ui.log"

    @property
    def url(self) -> str:
        ui = self.config.ui
        host = f"[{ui.host}]" if ":" in ui.host else ui.host
        return f"http://{host}:{ui.port}"

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


__all__ = ["LocalUiIsland"]
