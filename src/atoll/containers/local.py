"""The ``local`` container manager: builds are venvs, tasks are plain processes.

The embedded default: no Docker, nothing to install. A build is an immutable
code snapshot plus a cached virtual environment (:mod:`atoll.containers.local_build`);
a training is a process in its own session running ``python -m atoll.runner
train`` from the build's environment, in a task directory laid out like a
container (:mod:`atoll.containers.staging`). Deployments and the IDE are
supervised by :class:`atoll.containers.local_services.LocalServices`.

A training's task id is ``<project>/train/<name>``, its directory
``$ATOLL_HOME/tasks/<project>/train/<name>/``; inside it ``atoll/task.log``
holds stdout+stderr, ``atoll/pid`` the process id and start time, and
``atoll/exit_code`` the exit status written by the wrapping shell, so even a
SIGKILLed runner leaves its exit status (128 + signal) behind.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from atoll.containers._process import kill_group, pid_alive, proc_start_time
from atoll.containers.base import (
    BuildRequest,
    ContainerManager,
    IdeHandle,
    LogSink,
    ReplicaStatus,
    TaskSpec,
    TaskStatus,
)
from atoll.containers.staging import (
    build_python,
    remove_tree,
    stage_task_dir,
    task_dir_for,
    task_environment,
)
from atoll.domain.records import BuildVersion
from atoll.errors import BackendError, NotFoundError, UsageError

if TYPE_CHECKING:
    from atoll.containers.local_services import LocalServices

# The shell waits for the runner and records its exit status even when the
# runner dies from a signal (then $? is 128 + signal number).
_WRAPPER = (
    '"$0" -m atoll.runner "$1"; code=$?; '
    'printf "%s\\n" "$code" > "$ATOLL_TASK_DIR/atoll/exit_code.tmp" && '
    'mv "$ATOLL_TASK_DIR/atoll/exit_code.tmp" "$ATOLL_TASK_DIR/atoll/exit_code"; exit "$code"'
)


def describe_exit(code: int) -> str:
    """Human form of a task's exit status (shell convention: 128 + N = signal N)."""
    if code > 128:
        try:
            name = signal.Signals(code - 128).name
        except ValueError:
            name = f"signal {code - 128}"
        return f"killed by {name}" + (" (out of memory?)" if code - 128 == signal.SIGKILL else "")
    return f"exit code {code}"


class LocalContainerManager(ContainerManager):
    """Runs builds and tasks as local processes (``container_manager.type: local``)."""

    type = "local"

    @cached_property
    def services(self) -> LocalServices:
        from atoll.containers.local_services import LocalServices

        return LocalServices(self)

    # Builds

    def build(self, request: BuildRequest, log: LogSink) -> BuildVersion:
        """Snapshot the code and create (or reuse) the environment."""
        from atoll.containers.local_build import build_local

        return build_local(request, log)

    def remove_build(self, build: BuildVersion) -> None:
        """Remove the code snapshot unless another build or a training still uses it.

        Environments are shared by requirements hash and kept as a cache.
        """
        from atoll.domain.records import Training

        if not build.location:
            return
        others = [
            b
            for b in self.metadata.list(BuildVersion, scope=build.proj)
            if b.location == build.location and b.name != build.name
        ]
        users = self.metadata.count(Training, scope=build.proj, filter={"bvers.location": build.location})
        if not others and not users:
            remove_tree(Path(build.location))

    # One-off tasks

    def task_dir(self, task_id: str) -> Path:
        """Directory of the task ``task_id`` (``<project>/<kind>/<name>``)."""
        parts = task_id.split("/")
        if len(parts) != 3 or any(p in ("", ".", "..") for p in parts):
            raise NotFoundError(f"unknown local task id {task_id!r}")
        return task_dir_for(parts[1], parts[0], parts[2])

    def start_task(self, spec: TaskSpec) -> str:
        """Stage the task directory and start the runner detached, in its own session."""
        if spec.kind != "train":
            raise UsageError(f"start_task runs one-off trainings, not {spec.kind!r} tasks")
        task_id = f"{spec.project.name}/train/{spec.name}"
        root = self.task_dir(task_id)
        remove_tree(root)
        stage_task_dir(spec, root, self.files, spec.store_config)
        python = build_python(spec.build)
        env = task_environment(spec.build, root, spec.env)
        log_path = root / "atoll" / "task.log"
        with open(log_path, "ab") as log:
            try:
                proc = subprocess.Popen(  # fixed argv: no user input reaches the shell
                    ["/bin/sh", "-c", _WRAPPER, str(python), "train"],
                    cwd=root / "app",
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                )
            except OSError as exc:
                raise BackendError(f"cannot start training {spec.name}: {exc}") from exc
        pid_file = root / "atoll" / "pid"
        pid_file.write_bytes(orjson.dumps({"pid": proc.pid, "start": proc_start_time(proc.pid)}))
        return task_id

    def _pid(self, root: Path) -> tuple[int, int | None] | None:
        try:
            data: dict[str, Any] = orjson.loads((root / "atoll" / "pid").read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None
        return int(data["pid"]), data.get("start")

    @staticmethod
    def _exit_code(root: Path) -> int | None:
        try:
            return int((root / "atoll" / "exit_code").read_text().strip())
        except (OSError, ValueError):
            return None

    def task_status(self, task_id: str) -> TaskStatus:
        root = self.task_dir(task_id)
        if not root.exists():
            raise NotFoundError(f"no local task {task_id} (its directory {root} is gone)")
        pid = self._pid(root)
        running = pid is not None and pid_alive(*pid, reap_child=True)
        code = self._exit_code(root)
        if running and code is None:
            return TaskStatus(task_id, running=True)
        if code is None:
            if pid is None:  # staged but never started
                return TaskStatus(task_id, running=False, error="the task was never started")
            return TaskStatus(
                task_id, running=False, error="the task process vanished without an exit status"
            )
        return TaskStatus(
            task_id, running=False, exit_code=code, error=None if code == 0 else describe_exit(code)
        )

    def task_logs(self, task_id: str, follow: bool = False) -> Iterator[str]:
        root = self.task_dir(task_id)
        path = root / "atoll" / "task.log"
        if not path.exists():
            raise NotFoundError(f"no log for local task {task_id}")
        exit_watch = _ExitWatch(self._pid(root) if follow else None)
        try:
            yield from follow_file(
                path, lambda: follow and self.task_status(task_id).running, wait=exit_watch.wait
            )
        finally:
            exit_watch.close()

    def stop_task(self, task_id: str, grace: float = 10.0) -> None:
        """SIGTERM the task's process group (the runner saves its notebook), then SIGKILL."""
        root = self.task_dir(task_id)
        pid = self._pid(root)
        if pid is None or not pid_alive(*pid, reap_child=True):
            return
        kill_group(pid[0], pid[1], grace, kill_wait=5.0)

    def remove_task(self, task_id: str) -> None:
        self.stop_task(task_id, grace=2.0)
        remove_tree(self.task_dir(task_id))

    # Replicated services and the IDE: see atoll.containers.local_services.

    def deploy(self, spec: TaskSpec, timeout: float, log: LogSink) -> list[ReplicaStatus]:
        return self.services.deploy(spec, timeout, log)

    def service_status(self, project: str, name: str) -> list[ReplicaStatus]:
        return self.services.service_status(project, name)

    def service_logs(self, project: str, name: str, follow: bool = False) -> Iterator[str]:
        return self.services.service_logs(project, name, follow)

    def remove_service(self, project: str, name: str) -> None:
        self.services.remove_service(project, name)

    def start_ide(self, spec: TaskSpec, token: str) -> IdeHandle:
        return self.services.start_ide(spec, token)

    def stop_ide(self, project: str) -> None:
        self.services.stop_ide(project)


class _ExitWatch:
    """Sleeps that end early when a task's process exits (Linux pidfd).

    Following a log polls for new lines; waiting on the process as well means
    its end is noticed at once, not up to a poll interval later. Without
    pidfd support (or once the process is gone) it is a plain sleep.
    """

    def __init__(self, pid: tuple[int, int | None] | None) -> None:
        self._poller: select.poll | None = None
        self._fd: int | None = None
        if pid is None or not hasattr(os, "pidfd_open"):
            return
        try:
            self._fd = os.pidfd_open(pid[0])
        except OSError:
            return
        if not pid_alive(*pid):  # the pid was reused by another process: do not watch it
            self.close()
            return
        self._poller = select.poll()
        self._poller.register(self._fd, select.POLLIN)

    def wait(self, seconds: float) -> None:
        if self._poller is None:
            time.sleep(seconds)
            return
        if self._poller.poll(seconds * 1000):
            self.close()  # exited: later waits are plain sleeps, never a busy loop

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None
        self._poller = None


def follow_file(
    path: Path,
    keep_following: Any,
    poll: float = 0.2,
    wait: Callable[[float], object] = time.sleep,
) -> Iterator[str]:
    """Lines of ``path``; while ``keep_following()`` is true, wait for more.

    ``wait(poll)`` pauses between reads; it may return early (the writer ended).
    A partial last line is held back until its newline arrives (or the writer ended).
    """
    with open(path, "rb") as handle:
        pending = b""
        while True:
            chunk = handle.read(65536)
            if not chunk:
                if keep_following():
                    wait(poll)
                    continue
                chunk = handle.read()  # what the writer added before it ended
                if not chunk:
                    if pending:
                        yield pending.decode("utf-8", "replace")
                    return
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line.decode("utf-8", "replace")


__all__ = [
    "LocalContainerManager",
    "describe_exit",
    "follow_file",
    "task_environment",
]
