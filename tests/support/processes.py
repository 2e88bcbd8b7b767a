"""Processes the tests start or look for: free ports, servers stopped by PID, leak checks."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def processes_of(home: Path) -> list[int]:
    """PIDs of live processes started for ``home`` (their environment names it as ATOLL_HOME)."""
    marker = f"ATOLL_HOME={home}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X") and marker in environ.split(b"\0"):
            found.append(int(entry))
    return found


def kill_all(pids: list[int]) -> None:
    """Last-resort cleanup of processes a failing test left behind (by PID)."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def wait_for(check: Callable[[], Any], timeout: float = 30.0, every: float = 0.1) -> Any:
    """Poll ``check`` until it returns something truthy (bounded); return that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s")


class ServerProcess:
    """A server subprocess on 127.0.0.1:``port``, healthy (``GET /health`` = 200) once built; stopped by PID."""

    def __init__(self, tmp: Path, name: str, argv: list[str], env: dict[str, str], port: int) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = tmp / f"{name}.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                argv, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, cwd=tmp
            )
        self.wait_healthy()

    def wait_healthy(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}: {self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} not healthy in {timeout}s: {self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL: the server gets no chance to say goodbye."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@contextlib.contextmanager
def atoll_home(home: Path) -> Iterator[Path]:
    """Set ``ATOLL_HOME`` to ``home`` for the block; after it, fail if a process started for it still runs."""
    saved = os.environ.get("ATOLL_HOME")
    os.environ["ATOLL_HOME"] = str(home)
    try:
        yield home
    finally:
        leftovers = processes_of(home)
        kill_all(leftovers)
        if saved is None:
            os.environ.pop("ATOLL_HOME", None)
        else:
            os.environ["ATOLL_HOME"] = saved
        assert leftovers == [], f"processes were left running for {home}"


__all__ = ["ServerProcess", "atoll_home", "free_port", "kill_all", "processes_of", "wait_for"]
