"""End to end, as ``make demo`` does it, through the real ``atoll`` command.

One session-wide ATOLL_HOME holds the iris model, dataset, project, one build
(one environment, shared by every test) and the finished training ``first``.
Every process started here is stopped at the end (deployments, router, IDE),
and anything left behind fails the session.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nbformat
import pytest
from nbformat.v4 import new_code_cell

from support.processes import free_port, processes_of

pytestmark = pytest.mark.slow

ATOLL = Path(sys.executable).parent / "atoll"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "iris"
ROW = "[5.1, 3.5, 1.4, 0.2]"


@dataclass
class Atoll:
    home: Path
    cwd: Path
    router_port: int
    key: str = ""  # API key for the iris project (the router requires one)

    @property
    def router(self) -> str:
        return f"http://127.0.0.1:{self.router_port}"

    def env(self) -> dict[str, str]:
        return {**os.environ, "ATOLL_HOME": str(self.home), "ATOLL_ROUTER__PORT": str(self.router_port),
                "COLUMNS": "200", "NO_COLOR": "1"}

    def run(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([str(ATOLL), *args], cwd=self.cwd, env=self.env(), capture_output=True, text=True,
                              timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"atoll {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def json(self, *args: str, check: bool = True) -> Any:
        return json.loads(self.run("-o", "json", *args, check=check).stdout)

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.key}"}

    def replica_secret(self, deploy: str) -> dict[str, str]:
        """The header the router adds for a replica of ``deploy`` (from the router's replica secrets file)."""
        found = json.loads((self.home / "run" / "router-keys" / "replica-secrets.json").read_text())
        return {"x-atoll-replica-secret": found["secrets"][f"iris/{deploy}"]}

    def routed(self, deploy: str, body: str = ROW, query: str = "") -> httpx.Response:
        return httpx.post(f"{self.router}/predict?project=iris&deploy={deploy}{query}", content=body, timeout=30,
                          headers={"authorization": f"Bearer {self.key}"})


def _add_notebook(path: Path, cells: list[str]) -> None:
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [new_code_cell(c) for c in cells]
    nbformat.write(nb, str(path))


@pytest.fixture(scope="session")
def atoll(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Atoll]:
    """Model, dataset, project (a copy of examples/iris plus two test notebooks), build, training ``first``."""
    tmp = tmp_path_factory.mktemp("e2e")
    project_dir = tmp / "iris"
    shutil.copytree(EXAMPLE, project_dir, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    _add_notebook(project_dir / "notebooks" / "fail.ipynb",
                  ["from atoll.toolkit import data_path", "raise ValueError('the data is not what I expected')"])
    _add_notebook(project_dir / "notebooks" / "slow.ipynb",
                  ["import time", "for _ in range(600):\n    time.sleep(1)"])
    a = Atoll(tmp / "home", project_dir, free_port())
    try:
        a.run("model", "new", "--name", "iris-clf",
              "--model-file", '{"name": "clf.pkl", "required": true}',
              "--data-file", '{"name": "measures.csv", "required": true}',
              "--data-file", '{"name": "species.csv", "required": true}')
        a.run("ds", "new", "--model", "iris-clf", "--name", "iris", "--path", "datasets/iris")
        a.run("proj", "new", "--name", "iris", "--model", "iris-clf", "--home-dir", ".")
        a.run("proj", "build", "--name", "iris", "--from-home")
        a.key = a.json("key", "new", "--proj", "iris", "--name", "e2e")["key"]
        a.run("train", "new", "--proj", "iris", "--name", "first", "--nb", "notebooks/train.ipynb",
              "--dataset", "iris-clf:iris")
        yield a
    finally:
        for depl in a.json("depl", "list", "--proj", "iris", check=False) or []:
            a.run("depl", "rm", "--proj", "iris", "--name", depl["name"], check=False)
        a.run("note", "--stop", "--proj", "iris", check=False)
        a.run("isle", "router", "stop", check=False)
        leftovers = processes_of(a.home)
        for pid in leftovers:
            os.kill(pid, signal.SIGKILL)
        assert leftovers == [], "processes were left running"


@pytest.fixture(scope="session")
def served(atoll: Atoll) -> dict[str, Any]:
    """Deployment iris-svc: 2 replicas of predict.ipynb serving iris-clf:first, balanced on a port."""
    port = free_port()
    started = time.monotonic()
    atoll.run("depl", "new", "--proj", "iris", "--name", "iris-svc", "--nb", "notebooks/predict.ipynb",
              "--movers", "iris-clf:first", "-n", "2", "--port", str(port))
    answer = httpx.post(f"http://127.0.0.1:{port}/predict", content=ROW, timeout=30, headers=atoll.auth)
    cold_start = time.monotonic() - started
    assert answer.status_code == 200
    print(f"\ncold start (depl new -> first prediction): {cold_start:.1f}s")
    return {"port": port, "cold_start": cold_start}


def test_the_training_finished_and_published_a_version_with_its_metrics(atoll: Atoll) -> None:
    train = atoll.json("train", "info", "--proj", "iris", "--name", "first")
    assert train["task"]["state"] == "FINISHED"
    assert train["task"]["progress"] == 1
    version = atoll.json("movers", "info", "--model", "iris-clf", "--name", "first")
    assert [f["name"] for f in version["files"]] == ["clf.pkl"]
    assert 0.9 < version["details"]["metrics"]["accuracy"] <= 1
    assert version["train"]["name"] == "first" and version["dataset"]["name"] == "iris"


def test_two_replicas_predict_setosa_directly_balanced_and_through_the_router(
    atoll: Atoll, served: dict[str, Any]
) -> None:
    info = atoll.json("depl", "info", "--proj", "iris", "--name", "iris-svc")
    assert info["availability"] == "2/2"
    assert info["task"]["state"] == "RUNNING"
    assert [v["name"] for v in info["movers"]] == ["first"] and info["bvers"]["name"] == "latest"
    for replica in info["replicas"]:
        assert httpx.post(f"{replica['url']}/predict", content=ROW, timeout=30).status_code == 403  # no secret
        answer = httpx.post(f"{replica['url']}/predict", content=ROW, timeout=30,
                            headers=atoll.replica_secret("iris-svc")).json()
        assert answer["metadata"].pop("datetime").endswith("+00:00")
        assert answer == {"result": ["setosa"],
                          "metadata": {"model_version": "iris-clf:first", "replica": replica["name"]}}
    balanced = httpx.post(f"http://127.0.0.1:{served['port']}/predict", content=ROW, timeout=30, headers=atoll.auth)
    assert balanced.json()["result"] == ["setosa"]
    routed = atoll.routed("iris-svc", "[[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]")
    assert routed.status_code == 200 and routed.json()["result"] == ["setosa", "virginica"]
    bad = atoll.routed("iris-svc", '{"rows": 1}')
    assert bad.status_code == 400 and "expected" in bad.json()["error"]
    assert atoll.routed("iris-svc").status_code == 200  # still serving after the bad request


def test_a_killed_replica_is_restarted_while_the_router_keeps_answering(atoll: Atoll, served: dict[str, Any]) -> None:
    status_file = atoll.home / "run" / "services" / "iris" / "iris-svc" / "status.json"
    victim = json.loads(status_file.read_text())["replicas"][1]
    os.kill(victim["pid"], signal.SIGKILL)
    codes = []
    deadline = time.monotonic() + 60
    restarted = False
    while time.monotonic() < deadline and not restarted:
        codes.append(atoll.routed("iris-svc").status_code)
        replica = next(r for r in json.loads(status_file.read_text())["replicas"] if r["name"] == victim["name"])
        restarted = replica["state"] == "healthy" and replica["pid"] != victim["pid"]
        time.sleep(0.05)
    assert restarted, "the killed replica was not restarted within 60s"
    assert set(codes) == {200}, codes
    info = atoll.json("depl", "info", "--proj", "iris", "--name", "iris-svc")
    assert info["availability"] == "2/2"
    assert next(r for r in info["replicas"] if r["name"] == victim["name"])["restarts"] == 1


def test_a_retraining_hot_updates_every_replica_of_a_lazy_deployment(atoll: Atoll, served: dict[str, Any]) -> None:
    atoll.run("depl", "new", "--proj", "iris", "--name", "lazy", "--nb", "notebooks/lazy_predict.ipynb",
              "--movers", "iris-clf:first", "-n", "2")
    train = ["train", "new", "--proj", "iris", "--nb", "notebooks/train.ipynb", "--dataset", "iris-clf:iris"]
    refused = [  # checked before anything starts
        (["--td", "nope"], 1, "--target-deploy nope: deployment 'iris:nope' not found"),
        (["--td", "iris-svc"], 2, "deployment iris:iris-svc runs OnlinePredict, not a LazyModelServer"),
        (["--target-deploy", "lazy", "--detach"], 2, "--target-deploy needs `atoll train new` to follow"),
    ]
    for extra, code, says in refused:
        done = atoll.run(*train, "--name", "refused", *extra, check=False)
        assert done.returncode == code, done.stderr
        assert done.stderr.strip().splitlines() == [done.stderr.strip()] and says in done.stderr, done.stderr
    assert "refused" not in [t["name"] for t in atoll.json("train", "list", "--proj", "iris")]

    report = atoll.json(*train, "--name", "second", "--params", '{"C": 0.5, "kernel": "rbf"}', "--td", "lazy")
    assert report["task"]["state"] == "FINISHED"
    assert report["target_deploy"]["versions"] == ["iris-clf:second"]
    rows = report["target_deploy"]["replicas"]
    assert sorted(r["replica"] for r in rows) == ["lazy-0", "lazy-1"]
    assert [(r["status"], r["model_version"], r["error"]) for r in rows] == [("loaded", "iris-clf:second", None)] * 2
    for replica in atoll.json("depl", "info", "--proj", "iris", "--name", "lazy")["replicas"]:
        answer = httpx.post(f"{replica['url']}/predict", content=ROW, timeout=30, headers=atoll.replica_secret("lazy"))
        assert answer.json()["metadata"]["model_version"] == "iris-clf:second"  # what requests naming none get now

    for version in ("iris-clf:first", "iris-clf:second", "second"):
        answer = atoll.routed("lazy", query=f"&model_version={version}")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["result"] == ["setosa"]
        assert body["metadata"]["model_version"] == ("iris-clf:second" if version == "second" else version)
    missing = atoll.routed("lazy", query="&model_version=iris-clf:nope")
    assert missing.status_code == 404
    atoll.run("depl", "rm", "--proj", "iris", "--name", "lazy")
    assert atoll.routed("lazy").status_code == 404


def test_a_failing_notebook_is_recorded_failed_without_a_version(atoll: Atoll) -> None:
    done = atoll.run("train", "new", "--proj", "iris", "--name", "broken", "--nb", "notebooks/fail.ipynb",
                     "--dataset", "iris-clf:iris", check=False)
    assert done.returncode != 0
    train = atoll.json("train", "info", "--proj", "iris", "--name", "broken")
    assert train["task"]["state"] == "FAILED"
    assert "the data is not what I expected" in train["task"]["error"]
    versions = atoll.json("movers", "list", "--model", "iris-clf")
    assert "broken" not in {v["name"] for v in versions}


def test_a_training_can_be_cancelled(atoll: Atoll) -> None:
    atoll.run("train", "new", "--proj", "iris", "--name", "long", "--nb", "notebooks/slow.ipynb", "--detach")
    deadline = time.monotonic() + 120
    while atoll.json("train", "info", "--proj", "iris", "--name", "long")["task"]["state"] != "RUNNING":
        assert time.monotonic() < deadline, "the training never started"
        time.sleep(0.5)
    atoll.run("train", "cancel", "--proj", "iris", "--name", "long")
    train = atoll.json("train", "info", "--proj", "iris", "--name", "long")
    assert train["task"]["state"] == "CANCELLED"
    assert "long" not in {v["name"] for v in atoll.json("movers", "list", "--model", "iris-clf")}


def test_the_ide_answers_only_with_its_token(atoll: Atoll) -> None:
    port = free_port()
    started = atoll.json("note", "--proj", "iris", "--port", str(port), "--movers", "iris-clf:first", "--detach")
    try:
        token = started["token"]
        assert started["url"] == f"http://127.0.0.1:{port}/lab?token={token}"
        status = f"http://127.0.0.1:{port}/api/status"
        assert httpx.get(status, timeout=10).status_code in (401, 403)
        assert httpx.get(status, params={"token": token}, timeout=10).status_code == 200
        # The published version is staged, so predict.ipynb can be tried in place.
        staged = atoll.home / "tasks" / "iris" / "ide" / "ide" / "model" / "iris-clf.first" / "clf.pkl"
        assert staged.is_file()
    finally:
        atoll.run("note", "--stop", "--proj", "iris")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/api/status", timeout=5)


def test_a_deployment_that_cannot_start_is_recorded_failed_and_leaves_nothing(atoll: Atoll) -> None:
    before = set(processes_of(atoll.home))
    done = atoll.run("depl", "new", "--proj", "iris", "--name", "bad", "--nb", "notebooks/fail.ipynb",
                     "--timeout", "60", check=False)
    assert done.returncode == 1
    assert "deployment iris:bad did not start" in done.stderr
    assert "the data is not what I expected" in done.stderr  # the replica's log tail
    info = atoll.json("depl", "info", "--proj", "iris", "--name", "bad")
    assert info["task"]["state"] == "FAILED" and info["availability"] == "0/1"
    assert set(processes_of(atoll.home)) == before
    atoll.run("depl", "rm", "--proj", "iris", "--name", "bad")


def test_router_status_and_replica_logs(atoll: Atoll, served: dict[str, Any]) -> None:
    router = atoll.json("isle", "router", "status")
    assert router["running"] is True and router["url"] == atoll.router
    assert atoll.run("isle", "router", "setup").stdout.count("already running") == 1
    logs = atoll.run("depl", "logs", "--proj", "iris", "--name", "iris-svc").stdout
    assert "[iris-svc-0] --- atoll: starting iris-svc-0" in logs
    listed = atoll.json("depl", "list", "--proj", "iris")
    assert "iris-svc" in {d["name"] for d in listed}
