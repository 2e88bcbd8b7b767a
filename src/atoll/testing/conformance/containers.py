"""The behaviour every container manager must show.

Subclass and provide a ``world`` fixture (class- or module-scoped: it holds a
build) returning a :class:`ContainerWorld` made by :func:`make_world`::

    class TestLocal(ContainerManagerConformance, OnBoardConformance):
        @pytest.fixture(scope="class")
        def world(self, tmp_path_factory):
            manager = LocalContainerManager(config, metadata, files)
            return make_world(manager, tmp_path_factory.mktemp("src"), store_config, kill=..., predict=...)

:class:`ContainerManagerConformance` drives the manager with records made the
way the API makes them: build; a training finishes / fails naming the failing
cell / is cancelled / is killed and then recorded FAILED; logs; N replicas get
healthy; a redeploy rolls them over; a broken redeploy keeps the old replicas
serving; removing leaves nothing; the IDE answers only with its token.
:class:`BackgroundDeployConformance` starts deploys without waiting and
settles them later (``depl new -b``). :class:`OnBoardConformance` adds what needs the real on-board runner (a
notebook reading its dataset through the toolkit, in the manager's staging mode).
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from atoll.containers.base import (
    BuildRequest,
    ContainerManager,
    PendingRollout,
    ReplicaStatus,
    Rollout,
    TaskSpec,
    task_dir_for,
)
from atoll.containers.sources import code_hash
from atoll.domain.records import BuildVersion, Dataset, FileSpec, Model, Project, TaskState, Training
from atoll.errors import ExecutionError, NotFoundError
from atoll.task.deadline import wait_until
from atoll.task.records import update_training

MODEL = "conf-clf"
DATA_TEXT = "sepal,petal\n5.1,1.4\n"

NOTEBOOKS: dict[str, tuple[str, list[str]]] = {
    # name: (parameters cell, code cells)
    "ok.ipynb": ("greeting = 'hello'", ["print('notebook says', greeting, flush=True)", "result = greeting.upper()"]),
    "fail.ipynb": ("divisor = 0", ["print('about to fail', flush=True)", "ratio = 1 / divisor", "print('never')"]),
    "slow.ipynb": (
        "seconds = 120",
        ["print('slow start', flush=True)", "import time\nfor _ in range(int(seconds * 10)):\n    time.sleep(0.1)"],
    ),
    "predict.ipynb": (
        "greeting = 'hello'",
        [
            "from atoll.toolkit import OnlinePredict",
            "def predict(body):\n    return {'echo': body, 'greeting': greeting}",
            "OnlinePredict(predict)()",
        ],
    ),
    "broken.ipynb": ("", ["raise RuntimeError('the model file is corrupt')", "print('unreachable')"]),
    "data.ipynb": (
        "",
        ["from atoll.toolkit import data_path", "print('data:', open(data_path('measures.csv')).read().split()[1])"],
    ),
}


def write_notebook(path: Path, cells: list[str], params: str = "") -> Path:
    """A notebook with an optional ``parameters``-tagged first cell followed by ``cells``."""
    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    if params:
        first = new_code_cell(params)
        first.metadata["tags"] = ["parameters"]
        nb.cells.append(first)
    nb.cells.extend(new_code_cell(c) for c in cells)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_predict(replica: ReplicaStatus, body: str) -> Any:
    """``POST <replica url>/predict``: the ``result`` a replica reachable from here answers."""
    answer = httpx.post(f"{replica.url}/predict", content=body, timeout=30)
    answer.raise_for_status()
    return answer.json()["result"]


@dataclass
class ContainerWorld:
    """A manager with a project built on it, and how to reach what it runs."""

    manager: ContainerManager
    project: Project
    build: BuildVersion
    dataset: Dataset
    store_config: dict[str, Any]
    kill: Callable[[str], None]  # end a training's task from outside, as an OOM kill would
    predict: Callable[[ReplicaStatus, str], Any] = http_predict
    timeout: float = 120.0
    logs: list[str] = field(default_factory=list)


def make_world(
    manager: ContainerManager,
    source_dir: Path,
    store_config: dict[str, Any],
    kill: Callable[[str], None],
    predict: Callable[[ReplicaStatus, str], Any] = http_predict,
    timeout: float = 120.0,
) -> ContainerWorld:
    """Write the conformance project to ``source_dir``, record it, build it with ``manager``."""
    from atoll.files.artifacts import publish_artifact

    for name, (params, cells) in NOTEBOOKS.items():
        write_notebook(source_dir / name, cells, params)
    metadata = manager.metadata
    metadata.create(Model(name=MODEL, model_files=[FileSpec(name="clf.pkl")],
                          data_files=[FileSpec(name="measures.csv", required=True)]))
    project = metadata.create(Project(name="conformance", models=[MODEL]))
    data_dir = source_dir.parent / f"{source_dir.name}-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "measures.csv").write_text(DATA_TEXT)
    dataset = publish_artifact(metadata, manager.files, Dataset(name="first", model=MODEL), data_dir,
                               [FileSpec(name="measures.csv", required=True)])
    logs: list[str] = []
    request = BuildRequest(project=project, source_dir=source_dir, tag="latest", built_from="here",
                           code_hash=code_hash(source_dir))
    build = metadata.create(manager.build(request, logs.append))
    return ContainerWorld(manager, project, build, dataset, store_config, kill, predict, timeout, logs)


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def start_training(world: ContainerWorld, notebook: str, params: dict[str, Any] | None = None,
                   datasets: list[Dataset] | None = None) -> Training:
    """Record a training and start its task, as ``atoll train new`` does."""
    metadata = world.manager.metadata
    record = metadata.create(Training(
        name=_name("t"), proj=world.project.name, notebook=notebook, params=params or {}, bvers=world.build,
        datasets=datasets or [], container_manager=world.manager.type,
    ))
    spec = TaskSpec(kind="train", project=world.project, build=world.build, name=record.name, notebook=notebook,
                    datasets=datasets or [], meta={"training": record.public_dump()},
                    store_config=world.store_config)
    task_id = world.manager.start_task(spec)
    return update_training(metadata, record.proj, record.name, lambda r: setattr(r, "task_id", task_id))


def wait_ended(world: ContainerWorld, record: Training) -> Training:
    """Wait until the task ended and the record says how (or the runtime's timeout passed)."""
    manager, task_id = world.manager, record.task_id or ""

    def ended() -> bool:
        status = manager.task_status(task_id)
        return not status.running and manager.metadata.get(Training, record.name, record.proj).task.state.ended

    wait_until(ended, world.timeout, every=0.2)
    return manager.metadata.get(Training, record.name, record.proj)


def wait_running(world: ContainerWorld, record: Training) -> None:
    metadata = world.manager.metadata
    started = wait_until(
        lambda: metadata.get(Training, record.name, record.proj).task.state == TaskState.RUNNING,
        world.timeout, every=0.2,
    )
    assert started, "the training never started running"


def deploy(world: ContainerWorld, name: str, notebook: str = "predict.ipynb", replicas: int = 2,
           params: dict[str, Any] | None = None) -> list[ReplicaStatus]:
    record = {"name": name, "proj": world.project.name, "notebook": notebook, "params": params or {}}
    spec = TaskSpec(kind="deploy", project=world.project, build=world.build, name=name, notebook=notebook,
                    replicas=replicas, meta={"deployment": record}, store_config=world.store_config)
    return world.manager.deploy(spec, world.timeout, world.logs.append)


class ContainerManagerConformance:
    """Subclasses provide a ``world`` fixture returning a :class:`ContainerWorld`."""

    @pytest.fixture
    def world(self) -> ContainerWorld:  # pragma: no cover - overridden
        raise NotImplementedError

    def test_build_records_what_it_built(self, world: ContainerWorld) -> None:
        assert world.build.proj == world.project.name and world.build.name == "latest"
        assert world.build.container_manager == world.manager.type
        assert world.manager.build_key(world.build) is not None

    def test_a_training_finishes_and_its_logs_show_what_it_printed(self, world: ContainerWorld) -> None:
        record = wait_ended(world, start_training(world, "ok.ipynb", {"greeting": "bonjour"}))
        assert record.task.state == TaskState.FINISHED, record.task.error
        status = world.manager.task_status(record.task_id or "")
        assert not status.running and status.exit_code == 0 and status.error is None
        assert any("notebook says bonjour" in line for line in world.manager.task_logs(record.task_id or ""))

    def test_a_failing_training_names_the_failing_cell(self, world: ContainerWorld) -> None:
        record = wait_ended(world, start_training(world, "fail.ipynb"))
        assert record.task.state == TaskState.FAILED
        assert record.task.failed_cell == 2 and "ZeroDivisionError" in (record.task.error or "")
        assert world.manager.task_status(record.task_id or "").exit_code not in (None, 0)
        assert not any("never" == line.strip() for line in world.manager.task_logs(record.task_id or ""))

    def test_a_cancelled_training_ends_cancelled(self, world: ContainerWorld) -> None:
        record = start_training(world, "slow.ipynb")
        wait_running(world, record)
        world.manager.stop_task(record.task_id or "")
        assert not world.manager.task_status(record.task_id or "").running
        assert wait_ended(world, record).task.state == TaskState.CANCELLED

    def test_a_killed_training_is_recorded_failed(self, world: ContainerWorld) -> None:
        from atoll.api.context import AtollContext
        from atoll.api.trainings import reconcile

        record = start_training(world, "slow.ipynb")
        wait_running(world, record)
        world.kill(record.task_id or "")
        assert wait_until(lambda: not world.manager.task_status(record.task_id or "").running, world.timeout)
        status = world.manager.task_status(record.task_id or "")
        assert status.error and "kill" in status.error
        ctx = AtollContext(world.manager.config)
        ctx.__dict__.update(metadata=world.manager.metadata, files=world.manager.files, containers=world.manager)
        current = world.manager.metadata.get(Training, record.name, record.proj)
        assert reconcile(ctx, current).task.state == TaskState.FAILED

    def test_removing_a_training_leaves_nothing(self, world: ContainerWorld) -> None:
        record = wait_ended(world, start_training(world, "ok.ipynb"))
        world.manager.remove_task(record.task_id or "")
        with pytest.raises(NotFoundError):
            world.manager.task_status(record.task_id or "")
        assert not task_dir_for("train", record.proj, record.name).exists()

    def test_replicas_get_healthy_roll_over_and_survive_a_broken_redeploy(self, world: ContainerWorld) -> None:
        name = _name("svc")
        try:
            replicas = deploy(world, name)
            assert [r.state for r in replicas] == ["healthy", "healthy"]
            assert [r.state for r in world.manager.service_status(world.project.name, name)] == ["healthy"] * 2
            assert {world.predict(r, "x")["greeting"] for r in replicas} == {"hello"}

            rolled = deploy(world, name, params={"greeting": "bonjour"})
            assert [r.state for r in rolled] == ["healthy", "healthy"]
            assert {world.predict(r, "x")["greeting"] for r in rolled} == {"bonjour"}
            assert any("replica" in line for line in world.logs)

            with pytest.raises(ExecutionError, match="previous replicas keep serving"):
                deploy(world, name, notebook="broken.ipynb")
            kept = world.manager.service_status(world.project.name, name)
            assert [r.state for r in kept] == ["healthy", "healthy"]
            assert {world.predict(r, "x")["greeting"] for r in kept} == {"bonjour"}
            generations = list(task_dir_for("depl", world.project.name, name).glob("g*"))
            assert len(generations) <= 1  # the failed generation's staged files are gone
        finally:
            world.manager.remove_service(world.project.name, name)
        assert world.manager.service_status(world.project.name, name) == []
        assert not task_dir_for("depl", world.project.name, name).exists()

    def test_a_deployment_that_never_gets_healthy_leaves_nothing(self, world: ContainerWorld) -> None:
        name = _name("broken")
        with pytest.raises(ExecutionError, match="did not start"):
            deploy(world, name, notebook="broken.ipynb", replicas=1)
        assert world.manager.service_status(world.project.name, name) == []
        assert not task_dir_for("depl", world.project.name, name).exists()

    def test_the_ide_answers_only_with_its_token(self, world: ContainerWorld) -> None:
        port, token = free_port(), uuid.uuid4().hex
        spec = TaskSpec(kind="ide", project=world.project, build=world.build, name="ide", port=port,
                        store_config=world.store_config)
        handle = world.manager.start_ide(spec, token)
        try:
            assert handle.url == f"http://127.0.0.1:{port}/lab?token={token}"
            status = f"http://127.0.0.1:{port}/api/status"
            assert httpx.get(status, timeout=10).status_code in (401, 403)
            assert httpx.get(status, params={"token": "wrong"}, timeout=10).status_code in (401, 403)
            assert httpx.get(status, headers={"Authorization": f"token {token}"}, timeout=10).status_code == 200
        finally:
            world.manager.stop_ide(world.project.name)
        assert world.manager.ide_exit(world.project.name) is not None
        assert not task_dir_for("ide", world.project.name, "ide").exists()


def start_deploy(world: ContainerWorld, name: str, notebook: str = "predict.ipynb", replicas: int = 2,
                 params: dict[str, Any] | None = None) -> PendingRollout:
    """:func:`deploy` without waiting (``depl new -b``)."""
    record = {"name": name, "proj": world.project.name, "notebook": notebook, "params": params or {}}
    spec = TaskSpec(kind="deploy", project=world.project, build=world.build, name=name, notebook=notebook,
                    replicas=replicas, meta={"deployment": record}, store_config=world.store_config)
    return world.manager.start_deploy(spec, world.timeout, world.logs.append)


def settle(world: ContainerWorld, name: str, pending: PendingRollout) -> Rollout:
    """Look at a roll-out started by :func:`start_deploy` until it is no longer running."""
    looks: list[Rollout] = []

    def ended() -> bool:
        looks.append(world.manager.settle_deploy(world.project.name, name, pending))
        return looks[-1].state != "running"

    wait_until(ended, pending.deadline - time.time() + 10, every=0.2)
    return looks[-1]


class BackgroundDeployConformance:
    """A deploy nobody waits for (``start_deploy``), settled one look at a time (``settle_deploy``)."""

    def test_a_deploy_started_without_waiting_settles_healthy_and_a_broken_one_is_undone(
        self, world: ContainerWorld
    ) -> None:
        project, name = world.project.name, _name("bg")
        try:
            pending = start_deploy(world, name)
            assert pending.previous is None
            assert settle(world, name, pending).state == "done"
            kept = world.manager.service_status(project, name)
            assert [r.state for r in kept] == ["healthy", "healthy"]
            assert world.manager.settle_deploy(project, name, pending).state == "done"  # a later look agrees

            broken = start_deploy(world, name, notebook="broken.ipynb")
            assert broken.previous == pending.generation
            outcome = settle(world, name, broken)
            assert outcome.state == "failed" and outcome.error
            kept = world.manager.service_status(project, name)
            assert [r.state for r in kept] == ["healthy", "healthy"]
            assert {world.predict(r, "x")["greeting"] for r in kept} == {"hello"}
        finally:
            world.manager.remove_service(project, name)
        fresh = _name("bg-broken")
        outcome = settle(world, fresh, start_deploy(world, fresh, notebook="broken.ipynb", replicas=1))
        assert outcome.state == "failed"
        assert world.manager.service_status(project, fresh) == []
        assert not task_dir_for("depl", project, fresh).exists()


class OnBoardConformance:
    """What needs the on-board runner: a notebook reads its dataset through the toolkit."""

    def test_a_training_reads_its_dataset(self, world: ContainerWorld) -> None:
        record = wait_ended(world, start_training(world, "data.ipynb", datasets=[world.dataset]))
        assert record.task.state == TaskState.FINISHED, record.task.error
        lines = list(world.manager.task_logs(record.task_id or ""))
        assert any("data: 5.1,1.4" in line for line in lines), lines[-20:]


__all__ = [
    "NOTEBOOKS",
    "ContainerManagerConformance",
    "ContainerWorld",
    "OnBoardConformance",
    "deploy",
    "free_port",
    "http_predict",
    "make_world",
    "start_training",
    "wait_ended",
    "write_notebook",
]
