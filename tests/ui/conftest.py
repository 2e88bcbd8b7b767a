"""UI tests: the app over the memory backends and runtime, and real HTTP replicas where needed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from starlette.testclient import TestClient

from atoll.api.context import AtollContext
from atoll.api.tchests import new_tchest
from atoll.config import Config
from atoll.containers.base import BuildRequest, TaskSpec
from atoll.domain.records import (
    BuildVersion,
    Dataset,
    Deployment,
    Model,
    ModelVersion,
    Project,
    StoredFile,
    Task,
    TaskState,
    Training,
)
from atoll.task.deadline import wait_until
from atoll.task.records import update_training
from atoll.testing.memory import MemoryMetadataStore
from atoll.testing.memory_containers import MemoryContainerManager
from atoll.testing.memory_files import MemoryFileStore
from atoll.ui.app import create_app

TOKEN = "t0ken-for-tests-only"
HOSTILE_HTML = (
    "<b id='bold'>bold output</b><script>parent.document.title = 'pwned'; window.top.pwned = 1;</script>"
    "<img src=x onerror=\"parent.document.title='pwned'\">"
)


def training_notebook() -> str:
    """What the running training ``second`` runs: 100 epochs printed, then it keeps running."""
    nb = new_notebook()
    nb.cells = [new_code_cell("C = 1.0", metadata={"tags": ["parameters"]}),
                new_code_cell("import time\nfor i in range(100):\n    print('epoch', i)\nwhile True:\n    time.sleep(0.01)")]
    return nbformat.writes(nb)


def executed_notebook() -> str:
    nb = new_notebook()
    cell = new_code_cell("display(HTML(...))")
    cell.outputs = [new_output("display_data", data={"text/html": HOSTILE_HTML, "text/plain": "<HTML>"})]
    nb.cells = [new_markdown_cell("# Iris run\nTrained *today* <script>top.pwned = 3</script>"), cell, new_code_cell("print('accuracy', 0.97)", outputs=[
        new_output("stream", name="stdout", text="accuracy 0.97\n")])]
    return nbformat.writes(nb)


def populate(ctx: AtollContext, tmp: Path) -> None:
    """One model with a dataset, three versions (two from trainings), a project, a deployment, a chest."""
    store = ctx.metadata
    store.create(Model(name="iris-clf", desc="Iris <classifier>"))
    files = [StoredFile(name="measures.csv", size=2_400, sha256="a" * 64)]
    ds = store.create(Dataset(name="iris", model="iris-clf", files=files))
    store.create(Project(name="iris", models=["iris-clf"], desc="demo"))
    bvers = store.create(BuildVersion(name="latest", proj="iris", code_hash="c" * 64))
    notebook = tmp / "executed.ipynb"
    notebook.write_text(executed_notebook())
    ctx.files.upload(notebook, "trainings/iris/first/output.ipynb")
    first = store.create(Training(
        name="first", proj="iris", notebook="notebooks/train.ipynb", params={"C": 1.0}, bvers=bvers,
        datasets=[ds], task=Task(state=TaskState.FINISHED, progress=1.0), task_id="iris/train/first",
        output_notebook="trainings/iris/first/output.ipynb"))
    second = store.create(Training(
        name="second", proj="iris", notebook="notebooks/train.ipynb", params={"C": 0.5, "kernel": "rbf"},
        bvers=bvers, datasets=[ds], task=Task(state=TaskState.RUNNING, progress=0.4), task_id="iris/train/second"))
    clf = [StoredFile(name="clf.pkl", size=5_321, blake3="b" * 64)]  # the dataset's is an older sha256 one
    v1 = store.create(ModelVersion(name="first", model="iris-clf", files=clf, dataset=ds, train=first,
                                   details={"metrics": {"accuracy": 0.97, "f1": 0.96}}))
    store.create(ModelVersion(name="second", model="iris-clf", files=clf, dataset=ds, train=second,
                              details={"metrics": {"accuracy": 0.91, "f1": 0.9}}, pretrained="iris-clf:first"))
    store.create(ModelVersion(name="by-hand", model="iris-clf", files=clf, details={"note": "<i>no metrics</i>"}))
    store.create(Deployment(name="iris-svc", proj="iris", notebook="notebooks/predict.ipynb", n_tasks=2,
                            bvers=bvers, movers=[v1], task=Task(state=TaskState.RUNNING, progress=1.0)))
    new_tchest(ctx, "db", "s3cr3t-value", user="atoll", desc="database")


def run_second(ctx: AtollContext, tmp: Path) -> str:
    """Start the recorded training ``second`` in the runtime; return its task id once it printed its 100 epochs."""
    source = tmp / "source"
    (source / "notebooks").mkdir(parents=True)
    (source / "notebooks" / "train.ipynb").write_text(training_notebook())
    project = ctx.metadata.get(Project, "iris")
    record = ctx.metadata.get(Training, "second", "iris")
    build = ctx.containers.build(BuildRequest(project, source, "latest", "here", record.bvers.code_hash or ""),
                                 lambda _line: None)
    task_id = ctx.containers.start_task(TaskSpec(kind="train", project=project, build=build, name="second",
                                                 notebook=record.notebook, meta={"training": {"params": record.params}}))
    assert task_id == record.task_id
    assert wait_until(lambda: len(list(ctx.containers.task_logs(task_id))) == 100 or None, 10.0, every=0.02)

    def progress(training: Training) -> bool:  # what the notebook reported so far (the runner records it)
        training.task.progress = 0.4
        return True

    update_training(ctx.metadata, "iris", "second", progress)
    return task_id


@pytest.fixture
def ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AtollContext]:
    monkeypatch.setenv("ATOLL_HOME", str(tmp_path / "home"))
    context = AtollContext(config=Config.model_validate({"container_manager": {"type": "memory"}}), cwd=tmp_path)
    context.__dict__["metadata"] = MemoryMetadataStore()
    context.__dict__["files"] = MemoryFileStore()
    runtime = context.__dict__["containers"] = MemoryContainerManager(context.config, context.metadata, context.files)
    populate(context, tmp_path)
    task_id = run_second(context, tmp_path)
    yield context
    runtime.stop_task(task_id)


@pytest.fixture
def client(ctx: AtollContext) -> Iterator[TestClient]:
    """A client that already holds the token cookie (it followed the ?token= URL)."""
    with TestClient(create_app(ctx, TOKEN), base_url="http://127.0.0.1:30090") as c:
        assert c.get(f"/?token={TOKEN}").status_code == 200
        yield c


@pytest.fixture
def anonymous(ctx: AtollContext) -> Iterator[TestClient]:
    with TestClient(create_app(ctx, TOKEN), base_url="http://127.0.0.1:30090") as c:
        yield c


def json_of(client: TestClient, path: str, **kwargs: Any) -> Any:
    answer = client.get(path, headers={"Accept": "application/json"}, **kwargs)
    assert answer.status_code == 200, answer.text
    return answer.json()
