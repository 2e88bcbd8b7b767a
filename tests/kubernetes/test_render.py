"""``atoll kube render``: the manifests of a task from the recorded project, no cluster, nothing recorded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from atoll.api.context import AtollContext
from atoll.config import load_config
from atoll.domain.records import BuildVersion, Model, Project, Training
from kube_helpers import DIGEST, sample_inputs

ATOLL = Path(sys.executable).parent / "atoll"


@pytest.fixture
def recorded(home: Path) -> Path:
    """An ATOLL_HOME holding project iris, its build v1 (pushed, by digest), a dataset and a model version."""
    ctx = AtollContext(load_config(environ={"ATOLL_HOME": str(home)}))
    try:
        ctx.metadata.create(Project(name="iris", models=["iris-clf"]))
        ctx.metadata.create(Model(name="iris-clf"))
        ctx.metadata.create(BuildVersion(name="v1", proj="iris", container_manager="swarm", digest=DIGEST))
        inputs = sample_inputs()
        ctx.metadata.create(inputs["datasets"][0])
        ctx.metadata.create(inputs["versions"][0])
    finally:
        ctx.close()
    return home


def atoll(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATOLL_")}
    env.update({"ATOLL_HOME": str(home), "ATOLL_CONTAINER_MANAGER__TYPE": "kubernetes",
                "ATOLL_CONTAINER_MANAGER__RESOURCE_PROFILES": '{"serving": {"cpu_request": 0.5, "memory_limit": 512}}'})
    return subprocess.run([str(ATOLL), *args], capture_output=True, text=True, env=env, timeout=120, check=False)


def test_render_train_prints_the_job_and_records_nothing(recorded: Path) -> None:
    done = atoll(recorded, "kube", "render", "train", "--proj", "iris", "--tag", "v1", "--nb", "train.ipynb",
                 "--name", "first", "--dataset", "iris-clf:ds1", "--params", '{"n": 3}')
    assert done.returncode == 0, done.stderr
    docs = list(yaml.safe_load_all(done.stdout))
    assert [d["kind"] for d in docs] == ["Secret", "ConfigMap", "Job"]
    job = docs[2]
    assert job["metadata"]["name"] == "train-iris-first"
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == DIGEST
    assert job["spec"]["template"]["spec"]["initContainers"][0]["name"] == "fetch"
    assert docs[0]["data"] == {"store.json": ""}  # keys only: secrets are never printed
    assert '"n":3' in docs[1]["data"]["training.json"]
    ctx = AtollContext(load_config(environ={"ATOLL_HOME": str(recorded)}))
    try:
        assert not ctx.metadata.exists(Training, "first", "iris")
    finally:
        ctx.close()


def test_render_depl_with_port(recorded: Path) -> None:
    done = atoll(recorded, "kube", "render", "depl", "--proj", "iris", "--tag", "v1", "--nb", "predict.ipynb",
                 "--name", "online", "-n", "2", "--port", "30111", "--movers", "iris-clf:mv1",
                 "--rp", "serving", "-m", "features:/features:ro")
    assert done.returncode == 0, done.stderr
    docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(done.stdout)}
    assert docs[("Deployment", "depl-iris-online")]["spec"]["replicas"] == 2
    pod = docs[("Deployment", "depl-iris-online")]["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"] == {"requests": {"cpu": "500m"}, "limits": {"memory": "512Mi"}}
    assert {"name": "mount-0", "persistentVolumeClaim": {"claimName": "features", "readOnly": True}} in pod["volumes"]
    assert {"name": "mount-0", "mountPath": "/features", "readOnly": True} in pod["containers"][0]["volumeMounts"]
    assert docs[("Service", "depl-iris-online")]["spec"]["clusterIP"] == "None"
    assert docs[("Service", "depl-iris-online-port")]["spec"]["ports"][0]["nodePort"] == 30111


def test_render_note_and_rbac(recorded: Path) -> None:
    done = atoll(recorded, "kube", "render", "note", "--proj", "iris", "--tag", "v1")
    assert done.returncode == 0, done.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(done.stdout)]
    assert kinds == ["Secret", "ConfigMap", "Secret", "Pod", "Service"]
    done = atoll(recorded, "kube", "render", "rbac", "--with-namespace")
    assert [d["kind"] for d in yaml.safe_load_all(done.stdout)] == ["Namespace", "ServiceAccount", "Role", "RoleBinding"]


def test_render_isle_db_prints_no_password(recorded: Path) -> None:
    done = atoll(recorded, "kube", "render", "isle", "db", "--image", DIGEST)
    assert done.returncode == 0, done.stderr
    docs = list(yaml.safe_load_all(done.stdout))
    assert {d["kind"] for d in docs} == {"Secret", "StatefulSet", "Service"}
    assert next(d for d in docs if d["kind"] == "Secret")["data"] == {"password": ""}
    done = atoll(recorded, "kube", "render", "isle", "ui", "--image", DIGEST)
    assert done.returncode == 0, done.stderr
    docs = list(yaml.safe_load_all(done.stdout))
    assert [d["kind"] for d in docs] == ["Secret", "Deployment", "Service"]
    assert docs[0]["data"] == {"token.json": "", "stores.json": ""}
    done = atoll(recorded, "kube", "render", "isle", "router", "--image", DIGEST)
    assert done.returncode == 0, done.stderr
    docs = list(yaml.safe_load_all(done.stdout))  # router.replicas (2) pods, kept by a disruption budget
    assert [d["kind"] for d in docs] == ["Secret", "Deployment", "Service", "PodDisruptionBudget"]
    assert docs[1]["spec"]["replicas"] == 2 and docs[3]["spec"]["minAvailable"] == 1


def test_render_errors_are_one_line(recorded: Path) -> None:
    done = atoll(recorded, "kube", "render", "train", "--proj", "iris", "--tag", "nope", "--nb", "t.ipynb",
                 "--name", "x")
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1
    done = atoll(recorded, "kube", "render", "depl", "--proj", "iris", "--tag", "v1", "--nb", "p.ipynb",
                 "--name", "online", "--port", "8080")
    assert done.returncode == 2
    assert "30000-32767" in done.stderr
    done = atoll(recorded, "kube", "render", "note", "--proj", "iris", "--tag", "v1", "--rp", "huge")
    assert done.returncode == 2 and "(defined: serving)" in done.stderr
    done = atoll(recorded, "kube", "render", "train", "--proj", "iris", "--tag", "v1", "--nb", "t.ipynb",
                 "--name", "x", "-m", "features:/model/extra")
    assert done.returncode == 2 and "inside Atoll's own layout" in done.stderr
    done = atoll(recorded, "kube", "render", "isle", "router", "--image", "atoll/isle-router:latest")
    assert done.returncode == 2
    assert "docker.target_registry" in done.stderr
