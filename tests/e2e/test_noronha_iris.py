"""A project written for Noronha (examples/noronha-iris) on the local runtime, through the real ``atoll`` command.

Its Dockerfile (``FROM noronhadataops/noronha``, ``pip install -r
requirements.txt`` under ``source ${CONDA_HOME}/bin/activate``) and its
notebooks (``noronha.tools`` imports) are used as they are: the build installs
the Dockerfile's requirements, the training publishes a version with
``Publisher()(src_path=tmp_path())``, a deployment answers with
``OnlinePredict``. The swarm side of the same example runs in
``tests/docker/test_swarm.py`` (its ``fetch`` run).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import orjson
import pytest

from support.processes import free_port, processes_of

pytestmark = pytest.mark.slow

ATOLL = Path(sys.executable).parent / "atoll"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_a_noronha_project_builds_trains_and_serves_unchanged(tmp_path: Path) -> None:
    project = tmp_path / "botanics"
    shutil.copytree(EXAMPLES / "noronha-iris", project)
    home = tmp_path / "home"
    env = {**os.environ, "ATOLL_HOME": str(home), "ATOLL_ROUTER__PORT": str(free_port()), "NO_COLOR": "1"}

    def atoll(*args: str, check: bool = True, **extra: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([str(ATOLL), *args], cwd=project, env={**env, **extra}, capture_output=True,
                              text=True, timeout=600, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"atoll {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    try:
        atoll("model", "new", "--name", "iris-clf", "--model-file", '{"name": "clf.pkl", "required": true}',
              "--data-file", '{"name": "measures.csv"}', "--data-file", '{"name": "species.csv"}')
        atoll("ds", "new", "--model", "iris-clf", "--name", "iris-data-v0",
              "--path", str(EXAMPLES / "iris" / "datasets" / "iris"))
        atoll("proj", "new", "--name", "botanics", "--model", "iris-clf", "--home-dir", ".")
        off = atoll("proj", "build", check=False, ATOLL_CONTAINER_MANAGER__NORONHA_COMPAT="false")
        assert off.returncode == 2 and "noronha_compat is off" in off.stderr
        atoll("proj", "build")
        atoll("train", "new", "--name", "experiment-v1", "--nb", "notebooks/train.ipynb",
              "--dataset", "iris-clf:iris-data-v0")
        version = orjson.loads(atoll("-o", "json", "movers", "info", "--model", "iris-clf",
                                     "--name", "experiment-v1").stdout)
        assert [f["name"] for f in version["files"]] == ["clf.pkl"]
        assert version["details"]["metrics"]["accuracy"] > 0.9 and version["details"]["params"]["kernel"] == "linear"
        assert version["dataset"]["name"] == "iris-data-v0" and version["train"]["name"] == "experiment-v1"

        key = orjson.loads(atoll("-o", "json", "key", "new", "--proj", "botanics", "--name", "me").stdout)["key"]
        port = free_port()
        atoll("depl", "new", "--name", "homolog", "--nb", "notebooks/predict.ipynb",
              "--movers", "iris-clf:experiment-v1", "-n", "1", "--port", str(port))
        answer = httpx.post(f"http://127.0.0.1:{port}/predict", content="[5.1, 3.5, 1.4, 0.2]", timeout=30,
                            headers={"authorization": f"Bearer {key}"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["result"] == ["setosa"] and body["metadata"]["model_version"] == "iris-clf:experiment-v1"
    finally:
        atoll("depl", "rm", "--name", "homolog", check=False)
        atoll("isle", "router", "stop", check=False)
        leftovers = processes_of(home)
        for pid in leftovers:
            os.kill(pid, signal.SIGKILL)
        assert leftovers == [], "processes were left running"
