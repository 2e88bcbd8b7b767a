"""``atoll migrate`` end to end: a laptop's iris installation moved to the team's servers.

The iris flow runs on the embedded default (SQLite + local files), through the
real ``atoll`` command; then ``atoll migrate`` copies it to a real PostgreSQL
server (``atoll.testing.postgres``) and a real S3 server (``rclone serve
s3``). The laptop's own records and files are then removed, ``atoll.yaml``
points at the new stores, and the same ``movers list --filter`` answers and
a deployment of the migrated version serves the same prediction.

(MongoDB + Artifactory, which cannot run here, are covered in-process on their
stand-ins by tests/api/test_migrate.py: a deployment's replicas are separate
processes and cannot see an in-process mongomock.)
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from support.processes import free_port, kill_all, processes_of
from support.s3 import running_s3

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ATOLL = Path(sys.executable).parent / "atoll"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "iris"
ROWS = "[[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]"
GOOD = '{"details.metrics.accuracy": {"$gt": 0.9}}'


class Cli:
    def __init__(self, home: Path, cwd: Path) -> None:
        self.home, self.cwd = home, cwd

    def run(self, *args: str, stdin: str = "", check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ATOLL_")}
        env.update({"ATOLL_HOME": str(self.home), "COLUMNS": "200", "NO_COLOR": "1"})
        done = subprocess.run([str(ATOLL), *args], cwd=self.cwd, env=env, input=stdin, capture_output=True,
                              text=True, timeout=900, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"atoll {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self.run("-o", "json", *args).stdout)

    def predict(self) -> Any:
        port = free_port()
        self.run("depl", "new", "--proj", "iris", "--name", "svc", "--nb", "notebooks/predict.ipynb",
                 "--movers", "iris-clf:first", "-n", "1", "--port", str(port))
        try:
            key = self.json("key", "new", "--proj", "iris")["key"]  # the balancer follows the router's key rules
            answer = httpx.post(f"http://127.0.0.1:{port}/predict", content=ROWS, timeout=60,
                                headers={"authorization": f"Bearer {key}"})
            assert answer.status_code == 200, answer.text
            return answer.json()["result"]
        finally:
            self.run("depl", "rm", "--proj", "iris", "--name", "svc")


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[dict[str, Any]]:
    from atoll.testing.postgres import postgres_available, running_postgres

    if not postgres_available() and not os.environ.get("CI"):
        pytest.skip("PostgreSQL binaries not installed (set CI=1 to make this a failure)")
    with running_postgres() as pg_url, running_s3(tmp_path / "s3") as s3:
        yield {"postgres": pg_url, "s3": s3}


def test_iris_on_a_laptop_moves_to_postgresql_and_s3(tmp_path: Path, servers: dict[str, Any]) -> None:
    project = tmp_path / "iris"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    cli = Cli(tmp_path / "home", project)
    try:
        cli.run("model", "new", "--name", "iris-clf", "--model-file", '{"name": "clf.pkl", "required": true}',
                "--data-file", '{"name": "measures.csv", "required": true}',
                "--data-file", '{"name": "species.csv", "required": true}')
        cli.run("ds", "new", "--model", "iris-clf", "--name", "iris", "--path", "datasets/iris")
        cli.run("proj", "new", "--name", "iris", "--model", "iris-clf", "--home-dir", ".")
        cli.run("proj", "build", "--name", "iris", "--from-home")
        cli.run("train", "new", "--proj", "iris", "--name", "first", "--nb", "notebooks/train.ipynb",
                "--dataset", "iris-clf:iris")
        good_before = [v["name"] for v in cli.json("movers", "list", "--filter", GOOD)]
        prediction_before = cli.predict()
        assert good_before == ["first"] and prediction_before == ["setosa", "virginica"]

        # The team's servers; their credentials go into treasure chests, not onto the command line.
        pg = urlsplit(servers["postgres"])
        pg_plain = f"postgresql://{pg.hostname}:{pg.port}{pg.path}"
        cli.run("tchest", "new", "--name", "team-db", "--user", str(pg.username), "--password-stdin",
                stdin=str(pg.password))
        s3 = servers["s3"]
        cli.run("tchest", "new", "--name", "team-s3", "--user", s3["access_key"], "--password-stdin",
                stdin=s3["secret_key"])
        files = {"type": "s3", "url": s3["url"], "bucket": "atoll", "tchest": "team-s3"}
        migrated = cli.run("-o", "json", "migrate", "--to-metadata", pg_plain, "--to-metadata-tchest", "team-db",
                           "--to-files", json.dumps(files))
        report = json.loads(migrated.stdout)
        assert report["verified"] is True and report["records"]["movers"] == 1
        assert report["files"] == report["copied_files"] > 0
        assert pg.password not in migrated.stdout + migrated.stderr

        # From now on only the new stores hold the installation: the laptop's copies go
        # (the treasure chest opening the database stays, as metadata.tchest reads it there).
        with sqlite3.connect(cli.home / "atoll.db") as db:
            db.execute("DELETE FROM records WHERE kind != 'tchest'")
        shutil.rmtree(cli.home / "files")
        (cli.home / "atoll.yaml").write_text(yaml.safe_dump({
            "metadata": {"url": pg_plain, "tchest": "team-db"}, "file_store": files,
        }))

        assert [v["name"] for v in cli.json("movers", "list", "--filter", GOOD)] == good_before
        assert cli.json("ds", "list")[0]["name"] == "iris"
        assert cli.predict() == prediction_before
        again = cli.run("migrate", "--to-metadata", pg_plain, "--to-metadata-tchest", "team-db", check=False)
        assert again.returncode == 2 and "is the metadata store in use" in again.stderr
    finally:
        cli.run("depl", "rm", "--proj", "iris", "--name", "svc", check=False)
        cli.run("isle", "router", "stop", check=False)  # depl new started the router island
        leftovers = processes_of(cli.home)
        kill_all(leftovers)
        assert leftovers == [], "processes were left running"
