"""Trainings on the local runtime: a process in its own session per training.

A training's task id is ``<project>/train/<name>``, its directory
``$ATOLL_HOME/tasks/<project>/train/<name>/``; inside it ``atoll/task.log``
holds stdout+stderr, ``atoll/pid`` the process id and start time, and
``atoll/exit_code`` the exit status written by the wrapping shell, so even a
SIGKILLed runner leaves its exit status (128 + signal) behind.
"""

from __future__ import annotations

import os
import select
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from atoll.containers.base import (
    ContainerManager,
    StagedTask,
    TaskSpec,
    TaskStatus,
    describe_exit,
)
from atoll.containers.local.environment import build_python, link_app, link_mounts, task_environment
from atoll.containers.local.limits import preexec, process_limits
from atoll.containers.local.process import kill_group, pid_alive, proc_start_time
from atoll.errors import BackendError, NotFoundError

# The shell waits for the runner and records its exit status even when the
# runner dies from a signal (then $? is 128 + signal number).
_WRAPPER = (
    '"$0" -m atoll.runner "$1"; code=$?; '
    'printf "%s\\n" "$code" > "$ATOLL_TASK_DIR/atoll/exit_code.tmp" && '
    'mv "$ATOLL_TASK_DIR/atoll/exit_code.tmp" "$ATOLL_TASK_DIR/atoll/exit_code"; exit "$code"'
)


class LocalTasks(ContainerManager):
    """The training primitives of the local manager."""

    def launch_task(self, spec: TaskSpec, task_id: str, staged: StagedTask) -> None:
        """Start the runner detached, in its own session, from the build's environment."""
        root = staged.root
        link_app(spec, staged)
        link_mounts(spec, staged)
        python = build_python(spec.build)
        env = task_environment(spec.build, staged, spec.env)
        with open(root / "atoll" / "task.log", "ab") as log:
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
                    preexec_fn=preexec(process_limits(spec.profile)),  # noqa: PLW1509 - see local.limits
                )
            except OSError as exc:
                raise BackendError(f"cannot start training {spec.name}: {exc}") from exc
        pid_file = root / "atoll" / "pid"
        pid_file.write_bytes(orjson.dumps({"pid": proc.pid, "start": proc_start_time(proc.pid)}))

    @staticmethod
    def _pid(root: Path) -> tuple[int, int | None] | None:
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
        root = self.training_dir(task_id)
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
        root = self.training_dir(task_id)
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
        pid = self._pid(self.training_dir(task_id))
        if pid is None or not pid_alive(*pid, reap_child=True):
            return
        kill_group(pid[0], pid[1], grace, kill_wait=5.0)

    def discard_task(self, task_id: str) -> None:
        self.stop_task(task_id, grace=2.0)


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


__all__ = ["LocalTasks", "follow_file"]
