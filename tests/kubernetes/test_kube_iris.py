"""The iris example end to end on Kubernetes pods, through the real ``atoll`` command.

``container_manager.type: kubernetes`` against the emulated cluster of
:mod:`kube_pods` (kmock's emulator + the test control plane + the Docker
kubelet, which really runs the pods Atoll's manifests describe):

- ``proj build`` is the swarm build pushed to ``docker.target_registry`` (a
  ``docker-registry`` process on loopback) and recorded as ``image@digest``;
- ``train new`` creates a Job whose pod (the ``fetch`` init container, then
  the runner) trains on the dataset fetched from the files island and
  publishes a model version there, recorded in the db island;
- ``depl new`` creates a Deployment whose two pods get ready through their
  readiness probe; each answers ``setosa`` **directly on its pod IP**
  (``depl info``'s replica URLs) to a request carrying the deployment's
  replica secret, and 403 to one without it (the router island's pods cannot
  resolve the replicas here: the test kubelet has no cluster DNS);
- ``depl rm`` leaves no object in the namespace and no container.

Stand-ins, and why: no cluster runs here, so the API server is the emulator
and the kubelet runs the pods on the local Docker engine, starting the
engine's copy of the pushed ``image@digest`` rather than pulling it again; the
stores are the db and files islands run as swarm services (the Kubernetes
islands are not wired yet), which the pods reach by service name because the
kubelet joins them to the islands' overlay network — the stand-in for the
cluster network and its DNS.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kube_pods import PodCluster, pod_cluster

pytestmark = [pytest.mark.docker, pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "iris"
ROW = "[5.1, 3.5, 1.4, 0.2]"
CLF = '{"name": "clf.pkl", "required": true, "max_mb": 10}'
DATA = ['{"name": "measures.csv", "required": true}', '{"name": "species.csv", "required": true}']


class Session:
    """An ``atoll`` user on the pod cluster: ``atoll(...)`` runs the CLI in the project's directory."""

    def __init__(self, cluster: PodCluster, project_dir: Path, project: str) -> None:
        self.cluster = cluster
        self.project_dir = project_dir
        self.project = project
        self.timings: dict[str, float] = {}

    def run(self, *args: str, timeout: float = 300) -> str:
        """``atoll ARGS``; its output (fails the test on a non-zero exit)."""
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "atoll.cli.main", *args], capture_output=True,
                              text=True, timeout=timeout, cwd=self.project_dir, env=self.cluster.env, check=False)
        step = " ".join(a for a in args[:4] if a != "-o" and a != "json")
        self.timings[step] = time.monotonic() - started
        assert done.returncode == 0, f"atoll {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}"
        return done.stdout

    def atoll(self, *args: str, timeout: float = 300) -> Any:
        """``atoll -o json ARGS``, parsed."""
        out = self.run("-o", "json", *args, timeout=timeout)
        return json.loads(out) if out.strip() else None

    def objects(self) -> dict[str, list[str]]:
        """Names of what the emulated cluster holds for the project, by resource."""
        found: dict[str, list[str]] = {}
        for plural in ("jobs", "deployments", "pods", "services", "secrets", "configmaps",
                       "horizontalpodautoscalers"):
            names = [o["metadata"]["name"] for o in self.cluster.emulated.objects(plural, self.cluster.namespace)
                     if (o["metadata"].get("labels") or {}).get("atoll.io/project") == self.project]
            if names:
                found[plural] = sorted(names)
        return found


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    tmp = tmp_path_factory.mktemp("kube-iris")
    project = f"iris-{uuid.uuid4().hex[:4]}"
    project_dir = tmp / "iris"
    shutil.copytree(EXAMPLE, project_dir, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    with pod_cluster(tmp, "i") as cluster:
        cluster.images.append(f"{cluster.registry}/atoll/{project}:latest")
        state = Session(cluster, project_dir, project)
        try:
            yield state
        finally:
            print("\nkubernetes iris timings:", {k: round(v, 1) for k, v in state.timings.items()})


@pytest.mark.timeout(1800)  # a cold run builds the base image, then the iris image (scikit-learn)
def test_iris_trains_in_a_job_and_a_deployment_pod_predicts_setosa(session: Session) -> None:
    s, proj, cluster = session, session.project, session.cluster

    s.atoll("model", "new", "--name", "iris-clf", "--desc", "iris classifier", "--model-file", CLF,
            "--data-file", DATA[0], "--data-file", DATA[1])
    s.atoll("ds", "new", "--model", "iris-clf", "--name", "iris", "--path", "datasets/iris")
    s.atoll("proj", "new", "--name", proj, "--model", "iris-clf", "--home-dir", str(s.project_dir))

    # The build: pushed to the registry, recorded (and run) by digest.
    build = s.atoll("proj", "build", "--name", proj, "--from-home", timeout=1200)
    assert build["container_manager"] == "kubernetes", build
    assert build["digest"].startswith(f"{cluster.registry}/atoll/{proj}@sha256:"), build
    with httpx.Client(timeout=10) as http:  # the registry itself serves that digest
        digest = build["digest"].partition("@")[2]
        manifest = http.head(f"http://{cluster.registry}/v2/atoll/{proj}/manifests/{digest}", headers={
            "Accept": "application/vnd.docker.distribution.manifest.v2+json"})
        assert manifest.status_code == 200, manifest

    # The training: a Job whose pod fetches the dataset, trains and publishes a model version.
    training = s.atoll("train", "new", "--proj", proj, "--name", "first", "--nb", "notebooks/train.ipynb",
                       "--dataset", "iris-clf:iris", timeout=600)
    assert training["task"]["state"] == "FINISHED", training
    assert training["task_id"] == f"{proj}/train/first"
    jobs = cluster.emulated.calls("POST", "/jobs")
    assert len(jobs) == 1 and jobs[0][2]["spec"]["template"]["spec"]["containers"][0]["image"] == build["digest"]
    pod = jobs[0][2]["spec"]["template"]["spec"]
    assert [c["name"] for c in pod.get("initContainers", [])] == ["fetch"]
    logs = s.run("train", "logs", "--proj", proj, "--name", "first")
    assert "published model version" in logs, logs[-2000:]
    version = s.atoll("movers", "info", "--model", "iris-clf", "--name", "first")
    assert [f["name"] for f in version["files"]] == ["clf.pkl"]
    assert version["details"]["metrics"]["accuracy"] > 0.9

    # The deployment: two pods, each answering a prediction on its pod IP.
    started = time.monotonic()
    s.atoll("depl", "new", "--name", "svc", "--proj", proj, "--nb", "notebooks/predict.ipynb",
            "--movers", "iris-clf:first", "-n", "2", "--timeout", "300", timeout=600)
    s.timings["deploy until ready"] = time.monotonic() - started
    info = s.atoll("depl", "info", "--name", "svc", "--proj", proj)
    assert info["availability"] == "2/2", info
    urls = [r["url"] for r in info["replicas"]]
    assert len(set(urls)) == 2 and all(u and u.endswith(":8080") for u in urls), info["replicas"]
    # Only with the deployment's replica secret (the router's; delivered in the pods' store Secret).
    secrets = json.loads((cluster.home / "run" / "router-keys" / "replica-secrets.json").read_text())["secrets"]
    allowed = {"x-atoll-replica-secret": secrets[f"{proj}/svc"]}
    for url in urls:
        answer = httpx.post(f"{url}/predict", content=ROW, headers=allowed, timeout=60)
        assert answer.status_code == 200, answer.text
        assert "setosa" in answer.text
    assert httpx.post(f"{urls[0]}/predict", content=ROW, timeout=60).status_code == 403
    assert s.objects()["deployments"] == [f"depl-{proj}-svc"]

    # depl rm: no object of the deployment in the namespace, no pod container left running.
    s.atoll("depl", "rm", "--name", "svc", "--proj", proj, timeout=300)
    left = s.objects()
    assert not {k: v for k, v in left.items() if any("svc" in name for name in v)}, left
    assert s.atoll("depl", "list", "--proj", proj) == []
    deadline = time.monotonic() + 60
    while any("-svc-" in name for name in cluster.pod_containers()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert [n for n in cluster.pod_containers() if "-svc-" in n] == []
    for url in urls:
        with pytest.raises(httpx.HTTPError):
            httpx.post(f"{url}/predict", content=ROW, timeout=5)
