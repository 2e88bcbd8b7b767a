"""The iris example end to end on the swarm runtime, against the real engine.

One module-wide ATOLL_HOME (embedded SQLite + local file store, reached by the
containers through bind mounts) with ``container_manager.type: swarm`` and a
namespace of its own, run once per staging mode (``container_manager.staging``:
``host`` mounts the staged inputs, ``fetch`` lets each task fetch them from the
file store and hands a deployment its records as Docker configs), so every Docker object this module creates has a name
unique to the run. The ``fetch`` run builds the project written for Noronha
(examples/noronha-iris: its Dockerfile ``FROM noronhadataops/noronha``, its
``noronha.tools`` notebooks) on the same data, so the same scenario covers it; the fixture removes each one by exact name at the end and
fails when something is left. The base image is shared (built once, reused
while Atoll's code is unchanged).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from support.docker_cleanup import remove_by_name
from support.processes import free_port

if TYPE_CHECKING:
    from atoll.api.context import AtollContext
    from docker import DockerClient

pytestmark = pytest.mark.docker

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "iris"
NORONHA_EXAMPLE = EXAMPLE.parent / "noronha-iris"  # the fetch run's project (module doc)
ROW = b"[5.1, 3.5, 1.4, 0.2]"
MODEL_FILES = [{"name": "clf.pkl", "required": True, "max_mb": 10}]
DATA_FILES = [{"name": "measures.csv", "required": True}, {"name": "species.csv", "required": True}]


def write_notebook(path: Path, cells: list[str]) -> None:
    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.cells = [new_code_cell(c) for c in cells]
    nbformat.write(nb, str(path))


def post(url: str, body: bytes = ROW, timeout: float = 30, key: str = "") -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def get(url: str, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return 0


# Inside a replica's container: /predict without the secret, then /health.
_DIRECT = (
    "import urllib.request as u, urllib.error as e\n"
    "try:\n"
    "    u.urlopen(u.Request('http://127.0.0.1:8080/predict', data=b'[[5.1, 3.5, 1.4, 0.2]]', method='POST'), "
    "timeout=10)\n"
    "    print(200)\n"
    "except e.HTTPError as x:\n"
    "    print(x.code)\n"
    "print(u.urlopen('http://127.0.0.1:8080/health', timeout=10).status)\n"
)


@dataclass
class SwarmIris:
    client: DockerClient
    ctx: AtollContext
    home: Path
    project_dir: Path
    namespace: str
    project: str
    router_port: int
    staging: str = "host"
    key: str = ""  # API key of the project (the router requires one)
    timings: dict[str, float] = field(default_factory=dict)

    def router_url(self, deploy: str) -> str:
        return f"http://127.0.0.1:{self.router_port}/predict?project={self.project}&deploy={deploy}"

    def service(self, deploy: str) -> str:
        return f"{self.namespace}-{self.project}-{deploy}"


def _leftovers(client: DockerClient, namespace: str, project: str) -> list[str]:
    found = [f"service {s.name}" for s in client.services.list() if s.name.startswith(f"{namespace}-")]
    found += [f"container {c.name}" for c in client.containers.list(all=True) if c.name.startswith(f"{namespace}-")]
    found += [f"secret {s.name}" for s in client.secrets.list(filters={"label": f"io.atoll.namespace={namespace}"})]
    found += [f"config {c.name}" for c in client.configs.list(filters={"label": f"io.atoll.namespace={namespace}"})]
    found += [f"network {n.name}" for n in client.networks.list(names=[namespace]) if n.name == namespace]
    found += [f"volume {v.name}" for v in client.volumes.list(filters={"label": f"io.atoll.namespace={namespace}"})]
    return found


def _cleanup(client: DockerClient, namespace: str, project: str, deploys: list[str]) -> None:
    """Remove, by exact name, everything this module may have created."""
    remove_by_name(
        client,
        namespace,
        services=[f"{namespace}-{project}-{d}" for d in deploys] + [f"{namespace}-router"],
        containers=[f"{namespace}-train-{project}-{t}" for t in ("first", "oom", "slow")]
        + [f"{namespace}-ide-{project}"],
        images=[f"atoll/{project}:latest"],
    )


@pytest.fixture(scope="module", params=["host", "fetch"])
def iris(swarm_client: DockerClient, python_image: str, tmp_path_factory: pytest.TempPathFactory,
         request: pytest.FixtureRequest) -> Iterator[SwarmIris]:
    """Model, dataset, project (iris + test notebooks), a swarm build and the finished training ``first``."""
    from atoll.api import builds, datasets, keys, models, projects, trainings
    from atoll.api.context import AtollContext
    from atoll.config import load_config

    tmp = tmp_path_factory.mktemp("swarm")
    suffix = uuid.uuid4().hex[:6]
    namespace, project = f"atoll-t{suffix}", f"iris-{suffix}"
    project_dir = tmp / "iris"
    shutil.copytree(EXAMPLE, project_dir, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    if request.param == "fetch":  # Noronha's Dockerfile, requirements and train/predict notebooks over iris
        shutil.copytree(NORONHA_EXAMPLE, project_dir, dirs_exist_ok=True)
    write_notebook(project_dir / "notebooks" / "broken.ipynb", ["raise RuntimeError('this model does not load')"])
    write_notebook(project_dir / "notebooks" / "slow.ipynb", ["import time\nfor _ in range(600):\n    time.sleep(0.5)"])
    write_notebook(project_dir / "notebooks" / "oom.ipynb", [
        "print('allocating', flush=True)",
        "hog = b'x' * (400 * 1024 * 1024)\nprint(len(hog))",
    ])
    env = {
        "ATOLL_HOME": str(tmp / "home"),
        "ATOLL_CONTAINER_MANAGER__TYPE": "swarm",
        "ATOLL_CONTAINER_MANAGER__NAMESPACE": namespace,
        "ATOLL_CONTAINER_MANAGER__HEALTHCHECK__INTERVAL": "1",
        "ATOLL_CONTAINER_MANAGER__RESOURCE_PROFILES":
            '{"tiny": {"memory_limit": 64}, "roomy": {"cpu_limit": 1, "memory_limit": 1024, "memory_request": 128}}',
        "ATOLL_ROUTER__PORT": str(free_port()),
        "ATOLL_DOCKER__PYTHON_IMAGE": python_image,
        "ATOLL_CONTAINER_MANAGER__STAGING": request.param,
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    ctx = AtollContext(load_config(project_dir), cwd=project_dir)
    state = SwarmIris(swarm_client, ctx, tmp / "home", project_dir, namespace, project, int(env["ATOLL_ROUTER__PORT"]),
                      request.param)
    try:
        models.new_model(ctx, "iris-clf", "iris classifier", model_files=MODEL_FILES, data_files=DATA_FILES)
        projects.new_project(ctx, project, models=["iris-clf"], home_dir=str(project_dir))
        state.key = keys.new_key(ctx, project)[1]
        datasets.new_dataset(ctx, "iris-clf", "iris", path=project_dir / "datasets" / "iris")
        started = time.monotonic()
        builds.build_project(ctx, project, source="home", log=lambda _line: None)
        state.timings["build"] = time.monotonic() - started
        started = time.monotonic()
        record = trainings.new_training(ctx, "notebooks/train.ipynb", proj=project, name="first",
                                        datasets=["iris-clf:iris"])
        trainings.wait_training(ctx, record, timeout=300)
        state.timings["train"] = time.monotonic() - started
        yield state
    finally:
        ctx.close()
        _cleanup(swarm_client, namespace, project, ["svc", "solo"])
        left = _leftovers(swarm_client, namespace, project)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        print("\nswarm timings:", {k: round(v, 1) for k, v in state.timings.items()})
        assert left == [], f"left behind: {left}"


def test_the_build_is_recorded_by_image_id_and_runs_by_it(iris: SwarmIris) -> None:
    from atoll.domain.records import BuildVersion

    build = iris.ctx.metadata.get(BuildVersion, "latest", iris.project)
    assert build.container_manager == "swarm"
    assert build.image == f"atoll/{iris.project}:latest"
    assert build.digest is not None and build.digest.startswith("sha256:")
    assert iris.client.images.get(build.image).id == build.image_id == build.digest


def test_the_build_is_made_on_the_base_image_and_a_noronha_dockerfile_runs_unchanged(iris: SwarmIris) -> None:
    from atoll.domain.records import BuildVersion

    image = iris.client.images.get(iris.ctx.metadata.get(BuildVersion, "latest", iris.project).image_id)
    assert image.labels["io.atoll.image"] == "base"  # built FROM Atoll's base image (never Noronha's)
    env = image.attrs["Config"]["Env"]
    assert {"CONDA_HOME=/opt/atoll/venv", "CONDA_VENV=py3_default", "APP_HOME=/app"} <= set(env)
    assert image.attrs["Config"]["User"] == "10001:10001"  # tasks never run as root
    if iris.staging == "fetch":  # the fetch run builds the Noronha example from its own Dockerfile
        steps = " ".join(str(layer.get("CreatedBy")) for layer in image.history())
        assert "source ${CONDA_HOME}/bin/activate ${CONDA_VENV}" in steps
        assert "pip install -r requirements.txt" in steps
        # its training (test below) imported noronha.tools and sklearn: the pip install landed in the runner's Python


def test_the_training_finished_in_a_container_that_is_gone(iris: SwarmIris) -> None:
    from atoll.api import trainings, versions

    record = trainings.get_training(iris.ctx, "first", iris.project)
    assert record.task.state.value == "FINISHED", record.task.error
    assert record.task.progress == 1
    assert record.bvers.digest and record.task_id == f"{iris.project}/train/first"
    version = versions.get_version(iris.ctx, "iris-clf", "first")
    assert [f.name for f in version.files] == ["clf.pkl"]
    assert version.details["metrics"]["accuracy"] > 0.9
    names = [c.name for c in iris.client.containers.list(all=True)]
    assert f"{iris.namespace}-train-{iris.project}-first" not in names
    logs = "\n".join(trainings.training_logs(iris.ctx, "first", iris.project))
    assert "published model version" in logs


@pytest.fixture(scope="module")
def served(iris: SwarmIris) -> SwarmIris:
    """Deployment ``svc``: 2 replicas serving iris-clf:first, reached through the router service."""
    from atoll.api import deployments

    started = time.monotonic()
    deployments.new_deployment(iris.ctx, "svc", iris.project, notebook="notebooks/predict.ipynb", n_tasks=2,
                               movers=["iris-clf:first"], timeout=240, log=lambda _line: None,
                               resource_profile="roomy", mounts=[f"{iris.project_dir}/datasets:/mnt/datasets:ro"])
    iris.timings["deploy (2 replicas healthy)"] = time.monotonic() - started
    return iris


def test_the_replicas_get_their_inputs_as_the_staging_mode_says(served: SwarmIris) -> None:
    spec = served.client.services.get(served.service("svc")).attrs["Spec"]["TaskTemplate"]["ContainerSpec"]
    targets = {mount["Target"] for mount in spec.get("Mounts") or []}
    records = {config["File"]["Name"] for config in spec.get("Configs") or []}
    # --resource-profile roomy and --mount reach the service (docker inspect's view).
    resources = served.client.services.get(served.service("svc")).attrs["Spec"]["TaskTemplate"]["Resources"]
    assert resources["Limits"] == {"NanoCPUs": 10**9, "MemoryBytes": 1024 * 2**20}
    assert resources["Reservations"] == {"MemoryBytes": 128 * 2**20}
    mount = next(m for m in spec["Mounts"] if m["Target"] == "/mnt/datasets")
    assert (mount["Source"], mount["Type"], mount.get("ReadOnly")) == (f"{served.project_dir}/datasets", "bind", True)
    if served.staging == "host":
        assert {"/atoll/meta", "/data", "/model"} <= targets and not records
    else:  # nothing of the layout comes from the host: the replicas fetch the model version themselves
        assert not {"/atoll/meta", "/data", "/model"} & targets
        assert {"/atoll/meta/project.json", "/atoll/meta/build.json"} <= records
        assert "ATOLL_STAGING=fetch" in spec["Env"]


def test_two_replicas_predict_setosa_through_the_router(served: SwarmIris) -> None:
    from atoll.api import deployments

    service = served.client.services.get(served.service("svc"))
    spec = service.attrs["Spec"]
    assert spec["EndpointSpec"]["Mode"] == "dnsrr"
    assert spec["TaskTemplate"]["ContainerSpec"]["Image"].startswith("sha256:")
    assert spec["TaskTemplate"]["ContainerSpec"]["Init"] is True
    running = [t for t in service.tasks() if t["Status"]["State"] == "running"]
    assert len(running) == 2
    assert deployments.availability(served.ctx, "svc", served.project) == (2, 2)
    for _ in range(6):
        status, body = post(served.router_url("svc"), key=served.key)
        assert status == 200, body
        assert b"setosa" in body
    status, body = post(served.router_url("nope"), key=served.key)
    assert status == 404 and b"nope" in body
    # a replica answers predictions only with its secret (the router sends it): not to a caller on the network
    secrets = (served.home / "run" / "router-keys" / "replica-secrets.json").read_text()
    secret = json.loads(secrets)["secrets"][f"{served.project}/svc"]
    container = served.client.containers.list(filters={"label": f"com.docker.swarm.service.name={service.name}"})[0]
    code, output = container.exec_run(["python", "-c", _DIRECT])
    assert code == 0 and output.decode().split() == ["403", "200"], output
    assert all(secret not in item for item in container.attrs["Config"]["Env"])  # a Docker secret, not env
    top = container.top(ps_args="-o pid,uid,comm")  # no replica process runs as root (the tasks' user)
    assert "0" not in {row[top["Titles"].index("UID")] for row in top["Processes"]}, top["Processes"]
    logs = list(deployments.deployment_logs(served.ctx, "svc", served.project))
    assert all(isinstance(line, str) for line in logs)


def test_the_router_gets_the_keys_as_the_staging_mode_says(served: SwarmIris) -> None:
    """host: the keys directory bind-mounted; fetch: rotated Docker secrets, a new key works at once."""
    from atoll.api import keys

    router = f"{served.namespace}-router"

    def spec() -> dict[str, Any]:
        return served.client.services.get(router).attrs["Spec"]["TaskTemplate"]["ContainerSpec"]

    targets = {m["Target"] for m in spec().get("Mounts") or []}
    if served.staging == "host":
        assert targets == {"/atoll/router-keys"}
        assert not [s for s in spec().get("Secrets") or [] if "-router-keys-" in s["SecretName"]]
        return
    assert targets == set()  # nothing from this host: the router may run on any node
    found = {s["File"]["Name"]: s for s in spec()["Secrets"]}
    old = found["router-keys.json"]["SecretName"]
    assert old.startswith(f"{router}-keys-") and "router-replica-secrets.json" in found
    container = served.client.containers.list(filters={"label": f"com.docker.swarm.service.name={router}"})[0]
    uid = container.attrs["Config"]["User"].split(":")[0]
    assert (found["router-keys.json"]["File"]["UID"], found["router-keys.json"]["File"]["Mode"]) == (uid, 0o400)

    answers: list[tuple[float, int]] = []  # (when, status) of predictions meanwhile, one after another (0: none)
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set() and len(answers) < 10_000:
            at = time.monotonic()
            try:
                answers.append((at, post(served.router_url("svc"), key=served.key, timeout=5)[0]))
            except OSError:
                answers.append((at, 0))
                time.sleep(0.02)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    started = time.monotonic()
    late = keys.new_key(served.ctx, served.project, name="late")[1]  # the router service rolls onto it
    served.timings["key new (router rolled)"] = time.monotonic() - started
    stop.set()
    thread.join(timeout=30)
    order = served.client.services.get(router).attrs["Spec"]["UpdateConfig"]["Order"]
    failed = [at for at, code in answers if code != 200]
    assert len(answers) > 0
    gap = f", all within {failed[-1] - failed[0]:.2f} s" if failed else ""
    print(f"\n[fault] swarm router rolled onto a new keys secret ({order}): {len(failed)} of {len(answers)} "
          f"predictions failed during `key new` ({served.timings['key new (router rolled)']:.1f} s{gap})")
    status, body = post(served.router_url("svc"), key=late)
    assert status == 200 and b"setosa" in body
    new = {s["File"]["Name"]: s["SecretName"] for s in spec()["Secrets"]}["router-keys.json"]
    assert new != old and old not in [s.name for s in served.client.secrets.list()]  # the old one removed
    keys.delete_key(served.ctx, served.project, "late")
    assert post(served.router_url("svc"), key=late)[0] == 401
    assert post(served.router_url("svc"), key=served.key)[0] == 200
    assert new not in [s.name for s in served.client.secrets.list()]
    assert late not in json.dumps(served.client.services.get(router).attrs)


def test_a_broken_redeploy_rolls_back_and_the_old_replicas_keep_serving(served: SwarmIris) -> None:
    from atoll.api import deployments
    from atoll.errors import ExecutionError

    before = served.client.services.get(served.service("svc")).attrs["Spec"]["Labels"]["io.atoll.generation"]
    started = time.monotonic()
    with pytest.raises(ExecutionError) as failure:
        deployments.new_deployment(served.ctx, "svc", served.project, notebook="notebooks/broken.ipynb",
                                   n_tasks=2, movers=["iris-clf:first"], timeout=180, log=lambda _line: None)
    served.timings["failed redeploy + rollback"] = time.monotonic() - started
    assert "rolled back" in str(failure.value)
    assert "this model does not load" in str(failure.value) + failure.value.log_tail
    service = served.client.services.get(served.service("svc"))
    assert service.attrs["Spec"]["Labels"]["io.atoll.generation"] == before
    status, body = post(served.router_url("svc"), key=served.key)
    assert status == 200 and b"setosa" in body
    record = deployments.get_deployment(served.ctx, "svc", served.project)
    assert record.notebook == "notebooks/predict.ipynb"
    assert "redeploy_error" in record.details


def test_a_new_deployment_that_never_gets_healthy_leaves_nothing(iris: SwarmIris) -> None:
    from atoll.api import deployments
    from atoll.errors import ExecutionError

    port = free_port()
    with pytest.raises(ExecutionError) as failure:
        deployments.new_deployment(iris.ctx, "solo", iris.project, notebook="notebooks/broken.ipynb",
                                   port=port, timeout=120, log=lambda _line: None)
    assert "this model does not load" in str(failure.value) + failure.value.log_tail
    assert [s for s in iris.client.services.list() if s.name == iris.service("solo")] == []
    assert iris.client.secrets.list(filters={"label": ["io.atoll.name=solo", f"io.atoll.namespace={iris.namespace}"]}) == []


def test_depl_rm_leaves_no_service_container_or_secret(served: SwarmIris) -> None:
    from atoll.api import deployments

    deployments.remove_deployment(served.ctx, "svc", served.project)
    service = served.service("svc")
    assert [s for s in served.client.services.list() if s.name == service] == []
    assert served.client.containers.list(all=True, filters={"label": f"com.docker.swarm.service.name={service}"}) == []
    labels = ["io.atoll.name=svc", f"io.atoll.namespace={served.namespace}"]
    assert served.client.secrets.list(filters={"label": labels}) == []
    assert not (served.home / "tasks" / served.project / "deploy" / "svc").exists()
    status, _ = post(served.router_url("svc"), key=served.key)
    assert status == 404


def test_a_training_killed_for_memory_ends_failed(iris: SwarmIris) -> None:
    from atoll.api import trainings
    from atoll.api.context import AtollContext
    from atoll.config import load_config

    # train_profile names the default; --resource-profile picks another for one training.
    ctx = AtollContext(load_config(iris.project_dir, {**os.environ, "ATOLL_CONTAINER_MANAGER__TRAIN_PROFILE": "roomy"}),
                       cwd=iris.project_dir)
    try:
        record = trainings.new_training(ctx, "notebooks/oom.ipynb", proj=iris.project, name="oom",
                                        resource_profile="tiny")
        final = trainings.wait_training(ctx, record, timeout=180)
    finally:
        ctx.close()
    assert final.resource_profile == {"name": "tiny", "memory_limit": 64}
    assert final.task.state.value == "FAILED"
    assert "out of memory (limit 64 MB)" in (final.task.error or "")
    assert f"{iris.namespace}-train-{iris.project}-oom" not in [c.name for c in iris.client.containers.list(all=True)]


def test_the_ide_answers_only_with_its_token(iris: SwarmIris) -> None:
    from atoll.api import ide
    from atoll.containers.swarm.stage import runtime_user

    port = free_port()
    session = ide.start_ide(iris.ctx, iris.project, port=port, resource_profile="roomy",
                            mounts=[f"{iris.project_dir}/notebooks:/mnt/notebooks"])
    try:
        assert session.url.startswith(f"http://127.0.0.1:{port}/lab?token=")
        assert get(f"http://127.0.0.1:{port}/api/status", {"Authorization": f"token {session.token}"}) == 200
        assert get(f"http://127.0.0.1:{port}/api/status") in (401, 403)
        assert get(f"http://127.0.0.1:{port}/api/status", {"Authorization": "token wrong"}) in (401, 403)
        container = iris.client.containers.get(f"{iris.namespace}-ide-{iris.project}")
        assert session.token not in " ".join(container.attrs["Config"]["Cmd"] + container.attrs["Config"]["Env"])
        bindings = container.attrs["HostConfig"]["PortBindings"]["8888/tcp"]
        assert [b["HostIp"] for b in bindings] == ["127.0.0.1"]
        assert container.attrs["Config"]["User"] == "{}:{}".format(*runtime_user())  # never root
        assert session.runs_as_root is False
        host = container.attrs["HostConfig"]  # the profile and the mount, as docker inspect shows them
        assert (host["NanoCpus"], host["Memory"], host["MemoryReservation"]) == (10**9, 1024 * 2**20, 128 * 2**20)
        mount = next(m for m in container.attrs["Mounts"] if m["Destination"] == "/mnt/notebooks")
        assert (mount["Source"], mount["RW"]) == (f"{iris.project_dir}/notebooks", True)
    finally:
        ide.stop_ide(iris.ctx, iris.project)
    assert f"{iris.namespace}-ide-{iris.project}" not in [c.name for c in iris.client.containers.list(all=True)]


def test_a_cancelled_training_stops_its_container(iris: SwarmIris) -> None:
    from atoll.api import trainings

    record = trainings.new_training(iris.ctx, "notebooks/slow.ipynb", proj=iris.project, name="slow")
    name = f"{iris.namespace}-train-{iris.project}-slow"
    deadline = time.monotonic() + 120
    while trainings.get_training(iris.ctx, "slow", iris.project).task.state.value != "RUNNING":
        assert time.monotonic() < deadline, "the training never started"
        time.sleep(0.5)
    final = trainings.cancel_training(iris.ctx, "slow", iris.project)
    assert final.task.state.value == "CANCELLED"
    assert name not in [c.name for c in iris.client.containers.list(all=True)]
    assert iris.ctx.containers.task_status(record.task_id or "").exit_code == 143
