"""What a container manager is asked and what it answers: the records of the contract.

Plain dataclasses and small helpers shared by :mod:`atoll.containers.base`
(which re-exports every name here) and the managers.
"""

from __future__ import annotations

import os
import re
import signal
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from atoll.config import ResourceProfile, atoll_home
from atoll.domain.records import BuildVersion, Dataset, ModelVersion, Project, TaskMount
from atoll.errors import NotFoundError, UsageError
from atoll.task.layout import TaskLayout

TaskKind = Literal["train", "deploy", "ide"]
Staging = Literal["host", "fetch"]
LogSink = Callable[[str], None]

IDE_START_TIMEOUT = 120.0
#: uid/gid of ``atoll``, the user the base image (``base.Dockerfile``) runs as: task containers and
#: pods never run as root by default. An id no host account usually has, so files handed to it on a
#: host where Atoll runs as root give no user of that host new rights.
TASK_USER = (10001, 10001)
def task_user_group() -> int | None:
    """The group a root-run Atoll gives the files a ``TASK_USER`` container must read (None: not root).

    A container run as Atoll's own user reads them as their owner; a root-run Atoll runs
    containers as ``TASK_USER`` instead, and shares such files with its group only.
    """
    return TASK_USER[1] if os.geteuid() == 0 else None


IDE_CONFIG_FILE = "jupyter_server_config.json"  # in the task's secret directory: it holds the token


@dataclass
class BuildRequest:
    """What to build: the project's files already gathered in ``source_dir``."""

    project: Project
    source_dir: Path
    tag: str
    built_from: str  # here | home | git | pre-built
    code_hash: str
    git_commit: str | None = None
    no_cache: bool = False


@dataclass
class TaskSpec:
    """Everything a manager needs to start a task of any kind.

    The notebook parameters travel in the training / deployment record
    (``meta``), which the runner reads; ``notebook`` is the same path, for
    managers that need it before the task starts.
    """

    kind: TaskKind
    project: Project
    build: BuildVersion
    name: str  # training / deployment name ("ide" for the IDE)
    notebook: str | None = None  # path relative to the project root
    env: dict[str, str] = field(default_factory=dict)
    datasets: list[Dataset] = field(default_factory=list)
    versions: list[ModelVersion] = field(default_factory=list)
    meta: dict[str, dict[str, Any]] = field(default_factory=dict)  # extra /atoll/meta/<key>.json
    replicas: int = 1
    port: int | None = None
    #: Deployments: the roll-out goes on without the process that started it (``depl new -b``);
    #: otherwise a runtime may abandon a roll-out whose deployer exits before it is healthy.
    detached: bool = False
    profile: ResourceProfile | None = None
    profile_name: str | None = None  # the key of ``profile`` in ``container_manager.resource_profiles``
    mounts: list[TaskMount] = field(default_factory=list)  # --mount (checked by :func:`parse_mounts`)
    edit_dir: Path | None = None  # IDE --edit: mount this as /app
    allow_root: bool = False  # IDE --allow-root: Jupyter may run as root (see :func:`refuse_root_ide`)
    store_config: dict[str, Any] = field(default_factory=dict)  # secret: delivered as a secret
    #: Deployments: ``{"secret", "limits"}`` added to the store settings as ``replica`` (a secret too).
    replica: dict[str, Any] | None = None


@dataclass
class StagedTask:
    """What :meth:`ContainerManager.stage_task` wrote on the host for one task.

    ``layout`` is the DESIGN §4 layout under ``layout.root`` (``atoll/meta``,
    ``data``, ``model``, ``atoll/tmp``, ``atoll/secret/store.json``; no
    ``app``: the image or the local manager provides it). With ``staging ==
    "fetch"`` the ``data`` and ``model`` directories are empty: the task
    fetches the files named in ``atoll/meta`` itself. ``store_config`` is what
    ``atoll/secret/store.json`` holds (deliver it as a secret).
    """

    layout: TaskLayout
    staging: Staging
    store_config: dict[str, Any]

    @property
    def root(self) -> Path:
        return self.layout.root

    @property
    def store_file(self) -> Path:
        return self.layout.store_file


@dataclass
class TaskStatus:
    """State of a one-off task as the runtime sees it."""

    task_id: str
    running: bool
    exit_code: int | None = None
    error: str | None = None  # e.g. "OOM killed", "killed by signal 9"


@dataclass
class ReplicaStatus:
    name: str
    state: str  # starting | healthy | unhealthy | failed | stopped
    url: str | None = None
    restarts: int = 0
    error: str | None = None

    @property
    def healthy(self) -> bool:
        return self.state == "healthy"


@dataclass
class Rollout:
    """Progress of one generation's start or roll-out (:meth:`ContainerManager.rollout_state`).

    ``state``: ``running`` (keep waiting), ``done`` (every replica of the
    generation healthy), ``failed`` (it will not get healthy: ``error`` says
    why, ``log_tail`` shows the replicas' last lines).
    """

    state: Literal["running", "done", "failed"]
    replicas: list[ReplicaStatus] = field(default_factory=list)
    error: str | None = None
    log_tail: str = ""


@dataclass
class PendingRollout:
    """A roll-out started without waiting (:meth:`ContainerManager.start_deploy`), as a record keeps it.

    ``previous`` is the generation it replaces (None: a new deployment);
    ``deadline`` the wall-clock time (``time.time()``) after which it counts as failed.
    """

    generation: int
    previous: int | None
    deadline: float

    def to_dict(self) -> dict[str, Any]:
        return {"generation": self.generation, "previous": self.previous, "deadline": self.deadline}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PendingRollout:
        previous = data.get("previous")
        return cls(int(data["generation"]), int(previous) if previous is not None else None, float(data["deadline"]))


@dataclass
class IdeHandle:
    url: str  # with ?token=...
    task_id: str


@dataclass
class IdeLaunch:
    """Where a launched Jupyter Lab answers (``base_url`` without a path) and its task id."""

    base_url: str
    task_id: str


#: Where Atoll lays out a task (DESIGN.md §4): no ``--mount`` target may be there or below.
RESERVED_TARGETS = ("/app", "/data", "/model", "/atoll")
_VOLUME_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")
_CLAIM_NAME = re.compile(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?")


def parse_mounts(values: Iterable[str], manager: str) -> list[TaskMount]:
    """``--mount SRC:DST[:ro|:rw]`` values, checked for container manager ``manager``.

    ``SRC`` is an absolute host path (it must exist, except on kubernetes where it is
    a path of the node), or a name: a named volume on swarm, a PersistentVolumeClaim
    on kubernetes (the local runtime has no volumes). ``DST`` is absolute, not ``/``,
    not in Atoll's own layout (:data:`RESERVED_TARGETS`) and given once.

    Raises:
        UsageError: one line naming the value and what is wrong with it.
    """
    kube = manager in ("kubernetes", "kube")
    out: list[TaskMount] = []
    for value in values:
        parts = value.split(":")
        mode = parts.pop() if len(parts) == 3 else "rw"
        if len(parts) != 2 or mode not in ("ro", "rw") or not all(parts):
            raise UsageError(f"--mount {value!r}: expected SRC:DST or SRC:DST:ro")
        source, target = parts
        dst = PurePosixPath(target)
        if not dst.is_absolute() or ".." in dst.parts or str(dst) == "/":
            raise UsageError(f"--mount {value!r}: DST must be an absolute path (not / and without '..')")
        if any(str(dst) == top or str(dst).startswith(top + "/") for top in RESERVED_TARGETS):
            raise UsageError(f"--mount {value!r}: DST {dst} is inside Atoll's own layout ({', '.join(RESERVED_TARGETS)})")
        if any(m.target == str(dst) for m in out):
            raise UsageError(f"--mount {value!r}: DST {dst} is given twice")
        volume = not source.startswith("/")
        if volume and manager == "local":
            raise UsageError(f"--mount {value!r}: the local runtime mounts host paths only (give an absolute SRC)")
        if volume and not (_CLAIM_NAME if kube else _VOLUME_NAME).fullmatch(source):
            what = "a PersistentVolumeClaim name" if kube else "a volume name"
            raise UsageError(f"--mount {value!r}: SRC must be an absolute host path or {what}")
        if not volume:
            path = PurePosixPath(source)
            if ".." in path.parts:
                raise UsageError(f"--mount {value!r}: SRC must not contain '..'")
            if not kube and not Path(source).exists():
                raise UsageError(f"--mount {value!r}: SRC {source} does not exist on this host")
            source = str(path)
        out.append(TaskMount(source=source, target=str(dst), read_only=mode == "ro", volume=volume))
    return out


def refuse_root_ide(uid: int | None, edit_dir: Path | None, allow_root: bool) -> None:
    """Refuse an IDE that would run as root unless ``--allow-root`` says so (Jupyter's own rule).

    ``uid`` is the user the runtime would run Jupyter as (None: a process of the user Atoll runs as,
    which a runtime without containers cannot change); on swarm ``note --edit`` runs it as the owner
    of ``edit_dir``, so root when root owns that directory.

    Raises:
        UsageError: one line naming the two ways out.
    """
    if uid != 0 or allow_root:
        return
    where = f"{edit_dir} belongs to root" if edit_dir is not None else "the runtime would choose root"
    fix = f"give it to a user (`chown -R USER {edit_dir}`)" if edit_dir is not None else "run Atoll as a user"
    raise UsageError(f"Jupyter would run as root ({where}): {fix} or pass --allow-root")


def profile_summary(
    name: str | None, profile: ResourceProfile | None, manager: str, unenforced: Iterable[str] = ()
) -> dict[str, Any] | None:
    """What a training / deployment record keeps of its resource profile (None without one).

    ``{"name", <each value set>, "note"}``; ``note`` names the values ``manager`` does
    not enforce (``unenforced``: :attr:`ContainerManager.unenforced_resources`).
    """
    if profile is None:
        return None
    values = {k: v for k, v in profile.model_dump(mode="json").items() if v not in (None, 0)}
    out: dict[str, Any] = {"name": name, **values}
    skipped = [key for key in values if key in set(unenforced)]
    if skipped:
        out["note"] = f"not enforced on {manager}: {', '.join(skipped)}"
    return out


def http_ok(url: str, token: str | None = None, timeout: float = 2.0) -> bool:
    """True when ``GET url`` answers 200 (with ``token`` as Jupyter's ``Authorization: token``).

    The readiness probe of what a manager starts on loopback (the IDE, the router). An
    ``https://`` URL is probed without verifying the certificate (a liveness check of our own
    process that sends nothing secret; clients verify).
    """
    headers = {"Authorization": f"token {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    context = ssl._create_unverified_context() if url.startswith("https://") and not token else None
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def describe_exit(code: int) -> str:
    """Human form of a task's exit status (shell convention: 128 + N = signal N)."""
    if code > 128:
        try:
            name = signal.Signals(code - 128).name
        except ValueError:
            name = f"signal {code - 128}"
        return f"killed by {name}" + (" (out of memory?)" if code - 128 == signal.SIGKILL else "")
    return f"exit code {code}"


def task_dir_for(kind: str, project: str, name: str) -> Path:
    """Host directory where a task of ``kind`` (train, depl, ide) named ``name`` is staged."""
    return atoll_home() / "tasks" / project / kind / name


def training_task_id(project: str, name: str) -> str:
    return f"{project}/train/{name}"


def split_task_id(task_id: str) -> tuple[str, str]:
    """``(project, name)`` of a training task id ``<project>/train/<name>``.

    Raises:
        NotFoundError: not a task id a manager hands out.
    """
    parts = task_id.split("/")
    if len(parts) != 3 or parts[1] != "train" or any(p in ("", ".", "..") for p in parts):
        raise NotFoundError(f"unknown task id {task_id!r}")
    return parts[0], parts[2]


__all__ = [
    "IDE_CONFIG_FILE",
    "IDE_START_TIMEOUT",
    "RESERVED_TARGETS",
    "TASK_USER",
    "BuildRequest",
    "IdeHandle",
    "IdeLaunch",
    "LogSink",
    "PendingRollout",
    "ReplicaStatus",
    "Rollout",
    "StagedTask",
    "Staging",
    "TaskKind",
    "TaskSpec",
    "TaskStatus",
    "describe_exit",
    "http_ok",
    "parse_mounts",
    "profile_summary",
    "refuse_root_ide",
    "split_task_id",
    "task_dir_for",
    "task_user_group",
    "training_task_id",
]
