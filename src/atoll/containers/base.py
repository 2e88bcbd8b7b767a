"""The container-manager contract, its shared behaviour and the backend registry.

A container manager runs the three kinds of task (DESIGN.md §4) — a one-off
training, a replicated prediction service, the IDE — on some runtime::

    local       LocalContainerManager (processes; embedded default)
    swarm       SwarmContainerManager (Docker Engine / Swarm)
    kubernetes  KubernetesContainerManager (a Job, a Deployment, a Pod + Service)

:class:`ContainerManager` is what the API calls. It owns everything managers
do alike — staging a task through the task contract (:mod:`atoll.task`),
build bookkeeping, the roll-one-replica-at-a-time / keep-the-old-ones rule,
readiness waiting on one deadline (:func:`atoll.task.deadline.wait_until`),
the IDE's token — and leaves a few **primitives** to each manager (abstract
methods; their docstrings are the contract):

Builds
    ``build(request, log)``            build an image / environment, return the unsaved record
    ``delete_build(build)``            remove what ``build`` produced (nothing else uses it any more)

Trainings (one-off tasks; task id ``<project>/train/<name>``)
    ``launch_task(spec, task_id, staged)``  start the staged task detached
    ``task_status(task_id)``           the runtime's view: running / exit code / why it died
    ``task_logs(task_id, follow)``     lines the task printed
    ``stop_task(task_id)``             SIGTERM, then kill after a grace period
    ``discard_task(task_id)``          remove the runtime's leftovers of an ended task

Deployments (replicated services; one *generation* per deploy)
    ``running_generation(project, name)``  generation serving now (None: nothing runs)
    ``start_generation(spec, generation, previous, timeout, log)``  stage (``stage_task``) and start
                                       the replicas, or roll the running ones over one
                                       at a time; return without waiting
    ``rollout_state(project, name, generation)``  progress of that start/roll-out
    ``roll_back(project, name, previous, failed)``  put ``previous`` back to serving
    ``discard_service(project, name)`` stop and remove every replica (no lock taken)
    ``service_status(project, name)``  live state of each replica
    ``service_logs(project, name, follow)``  lines printed by the replicas
    ``service_lock(project, name)``    (optional) serialise deploys of one name; default none

IDE (Jupyter Lab; one per project)
    ``launch_ide(spec, staged, port, token)``  start Jupyter (config via :meth:`write_ide_config`)
    ``ide_exit(project)``              None while it runs, else why not (not started, exit code...)
    ``ide_log_tail(project)``          Jupyter's last lines
    ``discard_ide(project)``           stop it and remove its leftovers

Optional hooks: ``default_staging()`` (``host`` unless overridden),
``task_store_config(spec)`` (store settings as the task must see them),
``build_key(build)``, ``rollout_budget(...)``, ``recover_service(project, name)``, ``ide_uid(edit_dir)``.

A deploy either waits (:meth:`ContainerManager.deploy`) or returns once the
replicas are started (:meth:`ContainerManager.start_deploy`, ``depl new -b``)
and is settled later, one look at a time (:meth:`ContainerManager.settle_deploy`).

The records exchanged (:class:`TaskSpec`, :class:`StagedTask`,
:class:`Rollout`...) live in :mod:`atoll.containers.spec` and the roll-out
algorithm in :mod:`atoll.containers.rollout`; both are re-exported or used here.

Every task sees the same layout (``/app``, ``/atoll/meta``, ``/data``,
``/model``). Store credentials reach a task only through the manager's secret
mechanism (the ``atoll/secret/store.json`` file staging writes 0600, which a
manager delivers as a Docker/Kubernetes secret), never on a command line, in
an image or in a log.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from atoll._registry import Backend, Registry
from atoll.config import Config
from atoll.containers.rollout import roll_out, settle_roll_out, start_roll_out
from atoll.containers.spec import (
    IDE_CONFIG_FILE, IDE_START_TIMEOUT, BuildRequest, IdeHandle, IdeLaunch, LogSink, PendingRollout, ReplicaStatus,
    Rollout, StagedTask, Staging, TaskSpec, TaskStatus, describe_exit, http_ok, refuse_root_ide, split_task_id,
    task_dir_for, training_task_id,
)
from atoll.domain.records import BuildVersion, Training
from atoll.errors import ConflictError, ExecutionError, NotFoundError, UsageError
from atoll.task.deadline import wait_until
from atoll.task.layout import TaskLayout
from atoll.task.meta import write_private_json
from atoll.task.staging import remove_tree, stage_layout
from atoll.task.stores import with_replica

if TYPE_CHECKING:
    from atoll.files.base import FileStore
    from atoll.metadata.base import MetadataStore


class ContainerManager(ABC):
    """A runtime for builds, trainings, deployments and the IDE. The docstrings are the contract.

    Public methods (what :mod:`atoll.api` calls) are written here once;
    subclasses implement the abstract primitives listed in the module docstring.
    """

    type: str = "abstract"
    #: Resource-profile values this runtime cannot enforce for any task (see :meth:`unenforced`).
    unenforced_resources: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: Config, metadata: MetadataStore, files: FileStore) -> None:
        self.config = config
        self.metadata = metadata
        self.files = files

    def unenforced(self, kind: str) -> frozenset[str]:
        """Resource-profile values a task of ``kind`` does not get here (named in its record's note).

        ``auto_scale`` applies to deployments only.
        """
        return self.unenforced_resources | (frozenset() if kind == "deploy" else frozenset({"auto_scale"}))

    # Staging

    def default_staging(self) -> Staging:
        """Staging mode when ``container_manager.staging`` is not set (hook; ``host`` here)."""
        return "host"

    @property
    def staging(self) -> Staging:
        """``host``: Atoll writes inputs to a host directory the task sees; ``fetch``: the task fetches them."""
        configured = self.config.container_manager.staging
        return configured if configured is not None else self.default_staging()

    def task_store_config(self, spec: TaskSpec) -> dict[str, Any]:
        """The store settings as the task must see them (hook; unchanged here)."""
        return dict(spec.store_config)

    def stage_task(self, spec: TaskSpec, root: Path) -> StagedTask:
        """Write ``spec``'s layout under ``root`` (replacing what was there), per :attr:`staging`.

        Raises:
            NotFoundError / ValidationError: a dataset's or version's stored files are missing or corrupt.
        """
        store_config = self.task_store_config(spec)
        if spec.replica:
            store_config = with_replica(store_config, spec.replica)
        layout = stage_layout(
            TaskLayout(root),
            records={"project": spec.project, "build": spec.build, **spec.meta},
            artifacts=[*spec.datasets, *spec.versions],
            files=self.files if self.staging == "host" else None,
            store_config=store_config,
        )
        return StagedTask(layout, self.staging, store_config)

    # Builds

    @abstractmethod
    def build(self, request: BuildRequest, log: LogSink) -> BuildVersion:
        """Build the project (image or environment) and return the unsaved record.

        Raises:
            ExecutionError: the build failed (message + log tail).
            BackendUnavailableError: the runtime (e.g. Docker daemon) is down.
        """

    def build_key(self, build: BuildVersion) -> tuple[str, str] | None:
        """What a build shares with other builds: ``(record field, value)`` (hook).

        Builds with the same key use one image / snapshot, so it is deleted
        only with the last of them. Default: the image id, else the local location.
        """
        if build.image_id:
            return "image_id", build.image_id
        if build.location:
            return "location", build.location
        return None

    @abstractmethod
    def delete_build(self, build: BuildVersion) -> None:
        """Remove the image / snapshot of ``build`` (missing is not an error).

        Called by :meth:`remove_build` only when no other build and no training uses it.
        """

    def remove_build(self, build: BuildVersion) -> None:
        """Remove what :meth:`build` produced unless another build or a training still uses it."""
        if build.container_manager and build.container_manager != self.type:
            return
        key = self.build_key(build)
        if key is None:
            return
        attr, value = key
        others = [
            b for b in self.metadata.list(BuildVersion, scope=build.proj)
            if getattr(b, attr) == value and b.name != build.name
        ]
        users = self.metadata.count(Training, scope=build.proj, filter={f"bvers.{attr}": value})
        if not others and not users:
            self.delete_build(build)

    # Trainings

    def start_task(self, spec: TaskSpec) -> str:
        """Stage the training's files and start it detached; return its task id.

        Raises:
            UsageError: ``spec.kind`` is not ``train``.
            NotFoundError: the build or a staged artifact is missing.
        """
        if spec.kind != "train":
            raise UsageError(f"start_task runs one-off trainings, not {spec.kind!r} tasks")
        task_id = training_task_id(spec.project.name, spec.name)
        staged = self.stage_task(spec, self.training_dir(task_id))
        self.launch_task(spec, task_id, staged)
        return task_id

    def training_dir(self, task_id: str) -> Path:
        """Host directory staged for the training ``task_id`` (``<project>/train/<name>``).

        Raises:
            NotFoundError: not a training's task id.
        """
        return task_dir_for("train", *split_task_id(task_id))

    @abstractmethod
    def launch_task(self, spec: TaskSpec, task_id: str, staged: StagedTask) -> None:
        """Start the staged training detached (``python -m atoll.runner train`` on the build).

        The task gets ``staged`` as its layout (``ATOLL_TASK_DIR``, see
        :mod:`atoll.task.layout`), the store settings as a secret
        (``ATOLL_STORE_CONFIG``) and ``ATOLL_STAGING=fetch`` in fetch mode.
        Leftovers of an earlier task with the same id are replaced.

        Raises:
            BackendError: the runtime refused to start it.
        """

    @abstractmethod
    def task_status(self, task_id: str) -> TaskStatus:
        """Ask the runtime (not the task) how the task is doing.

        A task that died (killed, out of memory) reports ``running=False`` and an ``error``.

        Raises:
            NotFoundError: unknown task id.
        """

    @abstractmethod
    def task_logs(self, task_id: str, follow: bool = False) -> Iterator[str]:
        """Lines the task printed; with ``follow`` until it ends.

        Raises:
            NotFoundError: unknown task id.
        """

    @abstractmethod
    def stop_task(self, task_id: str) -> None:
        """SIGTERM the task (the runner saves its notebook), kill it after a grace period.

        No error when it already ended.
        """

    @abstractmethod
    def discard_task(self, task_id: str) -> None:
        """Stop the task if needed and remove the runtime's leftovers (containers, pid files)."""

    def remove_task(self, task_id: str) -> None:
        """Remove what remains of an ended task (runtime leftovers and its staged files)."""
        self.discard_task(task_id)
        try:
            root = self.training_dir(task_id)
        except NotFoundError:
            return  # not an id a manager handed out: nothing was staged for it
        remove_tree(root)

    # Deployments

    def service_lock(self, project: str, name: str) -> contextlib.AbstractContextManager[object]:
        """Serialise deploys/removals of one deployment (hook; no lock here)."""
        return contextlib.nullcontext()

    def generation_root(self, project: str, name: str, generation: int) -> Path:
        """Host directory staged for one generation of a deployment (replicas below it)."""
        return task_dir_for("depl", project, name) / f"g{generation}"

    def drop_generations(self, project: str, name: str, keep: int | None) -> None:
        """Remove the staged directories of every generation but ``keep`` (all when None)."""
        base = task_dir_for("depl", project, name)
        for path in base.glob("g*"):
            if keep is None or path.name != f"g{keep}":
                remove_tree(path)
        if keep is None:
            remove_tree(base)

    @abstractmethod
    def running_generation(self, project: str, name: str) -> int | None:
        """The generation of ``project:name`` that serves now (None when nothing runs).

        Raises:
            ConflictError: the deployment is being stopped (try again later).
        """

    @abstractmethod
    def start_generation(
        self, spec: TaskSpec, generation: int, previous: int | None, timeout: float, log: LogSink
    ) -> None:
        """Start ``spec.replicas`` replicas of ``generation``; return without waiting.

        ``timeout`` is how long one replica may take to get healthy.

        Stage with :meth:`stage_task` under :meth:`generation_root` (one
        directory per replica or one shared, as the runtime needs). With
        ``previous`` None nothing runs: start them all. Otherwise roll the
        running replicas over one at a time, each old replica stopping only
        once its new one is healthy; the runtime must keep the old ones when
        a new one never gets healthy.

        Raises:
            UsageError: e.g. ``spec.port`` taken or not possible with this many replicas.
        """

    @abstractmethod
    def rollout_state(self, project: str, name: str, generation: int) -> Rollout:
        """How the start / roll-out of ``generation`` is going (polled by :meth:`deploy`)."""

    @abstractmethod
    def roll_back(self, project: str, name: str, previous: int, failed: int) -> None:
        """After ``failed`` did not get healthy: make sure ``previous`` serves as before."""

    @abstractmethod
    def discard_service(self, project: str, name: str) -> None:
        """Stop and remove every replica and the runtime's state (missing is not an error)."""

    @abstractmethod
    def service_status(self, project: str, name: str) -> list[ReplicaStatus]:
        """Live state of each replica ([] when nothing runs)."""

    @abstractmethod
    def service_logs(self, project: str, name: str, follow: bool = False) -> Iterator[str]:
        """Lines printed by the replicas, prefixed ``[<replica>] ``."""

    def rollout_budget(self, spec: TaskSpec, timeout: float, previous: int | None) -> float:
        """How long :meth:`deploy` waits (hook): one health timeout per replica started or replaced."""
        replaced = spec.replicas if previous is not None else 0
        return timeout * (1 + spec.replicas + replaced) + 30

    def deploy(self, spec: TaskSpec, timeout: float, log: LogSink) -> list[ReplicaStatus]:
        """Start (or roll over, one replica at a time) ``spec.replicas`` replicas.

        Returns once every replica is healthy. A new deployment that never gets
        healthy leaves nothing running; a redeploy that never gets healthy
        keeps the old replicas serving.

        Raises:
            ExecutionError: replicas did not become healthy (with their log tail).
            ConflictError: the deployment is being stopped.
            UsageError: e.g. the port is taken.
        """
        return roll_out(self, spec, timeout, log)

    def start_deploy(self, spec: TaskSpec, timeout: float, log: LogSink) -> PendingRollout:
        """Start (or roll over) ``spec.replicas`` replicas and return without waiting (``depl new -b``).

        The roll-out follows the rule of :meth:`deploy` and goes on without this
        process (``spec.detached``); :meth:`settle_deploy` tells how it went.

        Raises:
            ConflictError: the deployment is being stopped.
            UsageError: e.g. the port is taken.
        """
        return start_roll_out(self, spec, timeout, log)

    def settle_deploy(self, project: str, name: str, pending: PendingRollout) -> Rollout:
        """One look at a roll-out :meth:`start_deploy` started: ``running``, ``done`` or ``failed``.

        ``done``: the staged files of older generations are removed. ``failed``
        (a replica failed, or ``pending.deadline`` passed): undone as :meth:`deploy`
        does: nothing of a new deployment keeps running, a redeploy's old replicas
        keep serving. Safe to call from any process, more than once.
        """
        return settle_roll_out(self, project, name, pending)

    def recover_service(self, project: str, name: str) -> None:
        """Take over or stop what a crashed part of the runtime left of a deployment (hook; nothing here).

        Called whenever Atoll looks at a deployment. Orchestrators (swarm,
        Kubernetes) do this themselves; the local manager adopts the replicas
        of a supervisor that died.
        """

    def remove_service(self, project: str, name: str) -> None:
        """Stop and remove every replica and its staged files (missing is not an error)."""
        with self.service_lock(project, name):
            self.discard_service(project, name)
            self.drop_generations(project, name, keep=None)

    # IDE

    def ide_uid(self, edit_dir: Path | None) -> int | None:
        """The uid this runtime runs the IDE as (hook; None here: a process of the user Atoll runs as)."""
        return None

    def write_ide_config(self, staged: StagedTask, token: str, **server_app: Any) -> Path:
        """Write Jupyter's config with ``token`` (0600, in the task's secret dir); return its path.

        ``server_app`` are ``ServerApp`` settings (ip, port, root_dir...). The
        token never appears on a command line or in the environment.
        """
        path = staged.layout.secret_dir / IDE_CONFIG_FILE
        settings = {"port_retries": 0, "open_browser": False, **server_app}
        write_private_json(path, {"IdentityProvider": {"token": token}, "ServerApp": settings})
        return path

    @abstractmethod
    def launch_ide(self, spec: TaskSpec, staged: StagedTask, port: int, token: str) -> IdeLaunch:
        """Start Jupyter Lab on the build, detached, reachable on 127.0.0.1:``port`` only.

        Pass ``token`` only through :meth:`write_ide_config` (``--config=<path>``).

        Raises:
            UsageError: the port is taken.
            BackendError: the runtime refused to start it.
        """

    @abstractmethod
    def ide_exit(self, project: str) -> str | None:
        """None while the project's IDE runs; otherwise why not (``not started``, ``exit code 1``...)."""

    @abstractmethod
    def ide_log_tail(self, project: str) -> str:
        """The last lines Jupyter printed ("" when unknown)."""

    @abstractmethod
    def discard_ide(self, project: str) -> None:
        """Stop the project's IDE and remove the runtime's leftovers (missing is not an error)."""

    def start_ide(self, spec: TaskSpec, token: str) -> IdeHandle:
        """Start Jupyter Lab on the build, protected by ``token``; wait until it answers.

        Raises:
            UsageError: no token, the port is taken, or it would run as root without ``spec.allow_root``.
            ConflictError: the project's IDE already runs.
            ExecutionError: Jupyter did not start (with its log tail).
        """
        if not token:
            raise UsageError("the IDE needs a token")
        refuse_root_ide(self.ide_uid(spec.edit_dir), spec.edit_dir, spec.allow_root)
        project = spec.project.name
        if self.ide_exit(project) is None:
            raise ConflictError(
                f"the IDE of project {project} already runs (stop it with `atoll note --stop --proj {project}`)"
            )
        self.discard_ide(project)
        port = spec.port or self.config.ide.port
        staged = self.stage_task(spec, task_dir_for("ide", project, "ide"))
        try:
            launch = self.launch_ide(spec, staged, port, token)
        except BaseException:
            self.stop_ide(project)
            raise

        def ready() -> str | None:
            if http_ok(f"{launch.base_url}/api/status", token):
                return "ready"
            ended = self.ide_exit(project)
            return f"ended: {ended}" if ended is not None else None

        outcome = wait_until(ready, IDE_START_TIMEOUT, every=0.2)
        if outcome == "ready":
            return IdeHandle(url=f"{launch.base_url}/lab?token={token}", task_id=launch.task_id)
        tail = self.ide_log_tail(project)
        self.stop_ide(project)
        if outcome is None:
            raise ExecutionError(f"Jupyter Lab did not answer within {IDE_START_TIMEOUT:g}s", log_tail=tail)
        last = tail.strip().splitlines()[-1] if tail.strip() else ""
        raise ExecutionError(f"Jupyter Lab {outcome[len('ended: '):]} before answering: {last}", log_tail=tail)

    def stop_ide(self, project: str) -> None:
        """Stop the project's IDE and remove its staged files (missing is not an error)."""
        self.discard_ide(project)
        remove_tree(task_dir_for("ide", project, "ide"))


MANAGERS: Registry[ContainerManager] = Registry(
    "container manager",
    {
        "kube": Backend("atoll.containers.kubernetes.manager:KubernetesContainerManager",
                        "pip install 'atoll[kubernetes]'"),
        "kubernetes": Backend("atoll.containers.kubernetes.manager:KubernetesContainerManager",
                              "pip install 'atoll[kubernetes]'"),
        "local": Backend("atoll.containers.local:LocalContainerManager"),
        "memory": Backend("atoll.testing.memory_containers:MemoryContainerManager"),
        "swarm": Backend("atoll.containers.swarm:SwarmContainerManager", "pip install 'atoll[docker]'"),
    },
)


def get_container_manager(config: Config, metadata: MetadataStore, files: FileStore) -> ContainerManager:
    """The manager named by ``container_manager.type``."""
    cls = MANAGERS.load(config.container_manager.type)
    return cls(config, metadata, files)


# Names of atoll.containers.spec the managers import from here are re-exported by the imports above.
__all__ = ["MANAGERS", "ContainerManager", "describe_exit", "get_container_manager"]
