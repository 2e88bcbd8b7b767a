"""One replica process of a local deployment, as the supervisor sees it (:mod:`.supervisor`).

:class:`Replica` starts the process (its own process group, its log file),
stops it and says what the status file shows of it; :func:`tls_health` is the
liveness check of a replica that serves HTTPS (the local router).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

from atoll.containers.local.limits import preexec
from atoll.containers.local.process import kill_group, pid_alive, proc_start_time
from atoll.task.deadline import wait_until


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class Replica:
    """One replica process and what the supervisor knows about it."""

    def __init__(self, spec: dict[str, Any], generation: int, command: list[str]) -> None:
        self.spec = spec  # {"name", "index", "task_dir", "env", "log", "limits"}
        self.name: str = spec["name"]
        self.index: int = spec["index"]
        self.generation = generation
        self.command = command
        self.host: str = spec.get("host") or "127.0.0.1"
        self.port: int = spec.get("port") or free_port()
        self.proc: subprocess.Popen[bytes] | AdoptedProcess | None = None
        self.start_time: int | None = None
        self.state = "starting"
        self.error: str | None = None
        self.restarts = 0
        self.streak = 0  # restarts since it was last stable
        self.in_rollout = True
        self.started_at = 0.0
        self.healthy_since: float | None = None
        self.last_ok = 0.0  # when its health check last answered 200 (or it started)
        self.failures = 0
        self.next_check = 0.0
        self.next_restart: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def spawn(self) -> None:
        env = {**os.environ, **self.spec["env"]} if self.spec.get("inherit_env") else dict(self.spec["env"])
        env.update(ATOLL_HOST="127.0.0.1", ATOLL_PORT=str(self.port), ATOLL_REPLICA=self.name)
        cwd = Path(self.spec["task_dir"]) / "app"
        Path(self.spec["log"]).parent.mkdir(parents=True, exist_ok=True)
        with open(self.spec["log"], "ab") as out:
            out.write(f"--- atoll: starting {self.name} (generation {self.generation}) on port {self.port}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                self.command,
                cwd=cwd if cwd.is_dir() else None,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped as a whole
                preexec_fn=preexec(self.spec.get("limits")),  # noqa: PLW1509 - see local.limits
            )
        self.start_time = proc_start_time(self.proc.pid)
        self.state, self.error = "starting", None
        self.started_at = self.last_ok = time.monotonic()
        self.healthy_since = None
        self.failures = 0
        self.next_check = 0.0
        self.next_restart = None

    def adopt(self, item: dict[str, Any]) -> None:
        """Take over the live process ``item`` (its entry in a dead supervisor's status) describes."""
        self.port = int(item["port"])
        self.proc = AdoptedProcess(int(item["pid"]), item.get("start_time"))
        self.start_time = item.get("start_time")
        self.restarts = int(item.get("restarts", 0))
        now = time.monotonic()
        self.state = "healthy" if item.get("state") == "healthy" else "starting"
        self.started_at = self.last_ok = now
        self.healthy_since = now if self.state == "healthy" else None
        self.error, self.failures, self.next_check, self.next_restart = None, 0, 0.0, None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            kill_group(self.proc.pid, self.start_time)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(1)
        self.state = "stopped"

    def public(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "index": self.index,
            "generation": self.generation,
            "url": self.url,
            "port": self.port,
            "pid": self.pid,
            "start_time": self.start_time,
            "state": self.state,
            "restarts": self.restarts,
            "error": self.error,
            "log": self.spec["log"],
        }


class AdoptedProcess:
    """A replica process an earlier supervisor started: not our child, so watched by PID and start time.

    Offers what :class:`Replica` uses of :class:`subprocess.Popen`; its exit status is unknown
    (``returncode`` is None even once ended: :attr:`ended` says so).
    """

    def __init__(self, pid: int, start_time: int | None) -> None:
        self.pid = pid
        self.start_time = start_time
        self.returncode: int | None = None
        self.ended = False

    def poll(self) -> int | None:
        if not self.ended and not pid_alive(self.pid, self.start_time):
            self.ended = True
        return -1 if self.ended else None  # -1: ended, how is unknown

    def wait(self, timeout: float | None = None) -> int:
        if not wait_until(lambda: self.poll() is not None, timeout if timeout is not None else 1e9, every=0.05):
            raise subprocess.TimeoutExpired(str(self.pid), timeout or 0)
        return -1


async def tls_health(host: str, port: int, timeout: float) -> bool:
    """``GET /health`` over TLS answers 200 (the certificate is not verified: a liveness check
    of our own process that sends nothing secret)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=context), timeout)
        writer.write(f"GET /health HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n".encode())
        line = await asyncio.wait_for(reader.readline(), timeout)
        return line.split(b" ")[1:2] == [b"200"]
    except (OSError, asyncio.TimeoutError, ssl.SSLError):
        return False
    finally:
        if writer is not None:
            writer.close()


__all__ = ["AdoptedProcess", "Replica", "free_port", "tls_health"]
