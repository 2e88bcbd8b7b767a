"""Local processes as the local runtime tracks them: identity, stopping, state files.

Shared by the one-off tasks (:mod:`atoll.containers.local.tasks`), the deployment
supervisor and its client (:mod:`~atoll.containers.local.supervisor`,
:mod:`~atoll.containers.local.services`) and the local router island
(:mod:`atoll.islands.router`).

A process is identified by its PID *and* its start time (clock ticks since
boot, from ``/proc/<pid>/stat``), so a recycled PID is never mistaken for it
nor signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Any

import orjson

from atoll.task.deadline import wait_until

STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL
KILL_WAIT = 2.0  # seconds to wait for the group to go after SIGKILL


def proc_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (None when it does not exist)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return int(fields[19]) if len(fields) > 19 else None


def reap(pid: int) -> bool:
    """Collect ``pid``'s exit status when it is our own finished child; True if it was."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child (or already collected)
        return False
    return done == pid


def pid_alive(pid: int | None, start_time: int | None, *, reap_child: bool = False) -> bool:
    """True when ``pid`` runs and is the process started at ``start_time`` (not a zombie).

    Args:
        reap_child: first collect ``pid`` when it is our finished child (the
            CLI following a training it started); leave it False for a child
            owned by a :class:`subprocess.Popen`, whose exit code it would steal.
    """
    if not pid:
        return False
    if reap_child and reap(pid):
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    if state in ("Z", "X"):
        return False
    return start_time is None or proc_start_time(pid) == start_time


def kill_group(
    pid: int, start_time: int | None, grace: float = STOP_GRACE, kill_wait: float = KILL_WAIT
) -> None:
    """SIGTERM the process group led by ``pid``, SIGKILL it after ``grace`` seconds.

    Returns once the leader is gone, or ``kill_wait`` seconds after the SIGKILL.
    """
    if not pid_alive(pid, start_time):
        return

    def gone() -> bool:
        reap(pid)  # when it is our child
        return not pid_alive(pid, start_time)

    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, kill_wait)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
            if sig == signal.SIGTERM:  # a stopped (SIGSTOP) process acts on SIGTERM only once continued
                os.killpg(pid, signal.SIGCONT)
        if wait_until(gone, wait, every=0.05):
            return


def write_json(path: Path, data: Any, mode: int = 0o644) -> None:
    """Write ``data`` atomically (temporary sibling + ``os.replace``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path`` (None when missing, unreadable or not an object)."""
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def log_tail(path: Path | str, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file ("" when missing)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            data = handle.read()
    except OSError:
        return ""
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])


__all__ = [
    "KILL_WAIT",
    "STOP_GRACE",
    "kill_group",
    "log_tail",
    "pid_alive",
    "proc_start_time",
    "read_json",
    "reap",
    "write_json",
]
