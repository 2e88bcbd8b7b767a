"""The container-manager contract and the backend registry.

A container manager runs the three kinds of task (DESIGN.md §4) — a one-off
training, a replicated prediction service, the IDE — on some runtime::

    local    LocalContainerManager (processes; embedded default)
    swarm    SwarmContainerManager (Docker Engine / Swarm)

Every task sees the same layout (``/app``, ``/atoll/meta``, ``/data``,
``/model``); on the local runtime it lives under a task directory named by
``ATOLL_TASK_DIR``. Store credentials reach a task only through the
manager's secret mechanism (``TaskSpec.store_config``), never on a command
line, in an image or in a log.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from atoll._registry import Backend, Registry
from atoll.config import Config, ResourceProfile
from atoll.domain.records import BuildVersion, Dataset, ModelVersion, Project

if TYPE_CHECKING:
    from atoll.files.base import FileStore
    from atoll.metadata.base import MetadataStore

TaskKind = Literal["train", "deploy", "ide"]
LogSink = Callable[[str], None]


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
    """Everything a manager needs to start a task of any kind."""

    kind: TaskKind
    project: Project
    build: BuildVersion
    name: str  # training / deployment name ("ide" for the IDE)
    notebook: str | None = None  # path relative to the project root
    params: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    datasets: list[Dataset] = field(default_factory=list)
    versions: list[ModelVersion] = field(default_factory=list)
    meta: dict[str, dict[str, Any]] = field(default_factory=dict)  # extra /atoll/meta/<key>.json
    replicas: int = 1
    port: int | None = None
    profile: ResourceProfile | None = None
    edit_dir: Path | None = None  # IDE --edit: mount this as /app
    store_config: dict[str, Any] = field(default_factory=dict)  # secret: delivered as a secret


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
class IdeHandle:
    url: str  # with ?token=...
    task_id: str


class ContainerManager(ABC):
    """Abstract runtime. The docstrings are the contract."""

    type: str = "abstract"

    def __init__(self, config: Config, metadata: MetadataStore, files: FileStore) -> None:
        self.config = config
        self.metadata = metadata
        self.files = files

    # Builds
    @abstractmethod
    def build(self, request: BuildRequest, log: LogSink) -> BuildVersion:
        """Build the project (image or environment) and return the unsaved record.

        Raises:
            ExecutionError: the build failed (message + log tail).
            BackendUnavailableError: the runtime (e.g. Docker daemon) is down.
        """

    @abstractmethod
    def remove_build(self, build: BuildVersion) -> None:
        """Remove what :meth:`build` produced (missing is not an error)."""

    # One-off tasks (training)
    @abstractmethod
    def start_task(self, spec: TaskSpec) -> str:
        """Stage the task's files and start it detached; return its task id."""

    @abstractmethod
    def task_status(self, task_id: str) -> TaskStatus:
        """Ask the runtime (not the task) how the task is doing.

        Raises:
            NotFoundError: unknown task id.
        """

    @abstractmethod
    def task_logs(self, task_id: str, follow: bool = False) -> Iterator[str]:
        """Lines the task printed; with ``follow`` until it ends."""

    @abstractmethod
    def stop_task(self, task_id: str) -> None:
        """Stop a running task (no error when already ended)."""

    @abstractmethod
    def remove_task(self, task_id: str) -> None:
        """Remove what remains of an ended task (containers, work dirs)."""

    # Replicated services (deployment)
    @abstractmethod
    def deploy(self, spec: TaskSpec, timeout: float, log: LogSink) -> list[ReplicaStatus]:
        """Start (or roll over, one replica at a time) ``spec.replicas`` replicas.

        Returns once every replica is healthy. A new deployment that never gets
        healthy leaves nothing running; a redeploy that never gets healthy
        keeps the old replicas serving.

        Raises:
            ExecutionError: replicas did not become healthy (with their log tail).
        """

    @abstractmethod
    def service_status(self, project: str, name: str) -> list[ReplicaStatus]:
        """Live state of each replica ([] when nothing runs)."""

    @abstractmethod
    def service_logs(self, project: str, name: str, follow: bool = False) -> Iterator[str]:
        """Lines printed by the replicas."""

    @abstractmethod
    def remove_service(self, project: str, name: str) -> None:
        """Stop and remove every replica (missing is not an error)."""

    # IDE
    @abstractmethod
    def start_ide(self, spec: TaskSpec, token: str) -> IdeHandle:
        """Start Jupyter Lab on the build, protected by ``token``."""

    @abstractmethod
    def stop_ide(self, project: str) -> None:
        """Stop the project's IDE (missing is not an error)."""


MANAGERS: Registry[ContainerManager] = Registry(
    "container manager",
    {
        "kube": Backend("atoll.containers.kubernetes.manager:KubernetesContainerManager",
                        "pip install 'atoll[kubernetes]'"),
        "kubernetes": Backend("atoll.containers.kubernetes.manager:KubernetesContainerManager",
                              "pip install 'atoll[kubernetes]'"),
        "local": Backend("atoll.containers.local:LocalContainerManager"),
        "swarm": Backend("atoll.containers.swarm:SwarmContainerManager", "pip install 'atoll[docker]'"),
    },
)


def get_container_manager(config: Config, metadata: MetadataStore, files: FileStore) -> ContainerManager:
    """The manager named by ``container_manager.type``."""
    cls = MANAGERS.load(config.container_manager.type)
    return cls(config, metadata, files)


def http_ok(url: str, token: str | None = None, timeout: float = 2.0) -> bool:
    """True when ``GET url`` answers 200 (with ``token`` as Jupyter's ``Authorization: token``).

    The readiness probe of what a manager starts on loopback (the IDE, the router).
    """
    headers = {"Authorization": f"token {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False
