"""Atoll driven the way a user drives it: the ``atoll`` CLI on the local runtime, in a throwaway ATOLL_HOME.

model -> dataset -> project -> build (once) -> ``atoll train new`` -> ``atoll
depl new``. Replica URLs and pids come from ``atoll -o json depl info`` and
the router's discovery file; the router island is started by ``depl new``
and stopped by :meth:`AtollHome.close`, which also removes every deployment
it made and the home directory.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from bench.tools import ROOT, WORK, free_port, run, say

IRIS = ROOT / "examples" / "iris"
MODEL = "iris-clf"
PROJ = "iris"


class AtollHome:
    """One throwaway ATOLL_HOME with the iris example set up in it."""

    def __init__(self, proj: str = PROJ, extra_env: dict[str, str] | None = None, label: str = "") -> None:
        self.proj = proj
        self.home = WORK / f"atoll-home{label}-{os.getpid()}"
        shutil.rmtree(self.home, ignore_errors=True)
        self.home.mkdir(parents=True)
        self.router_port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ATOLL_")}
        self.env.update(ATOLL_HOME=str(self.home), ATOLL_ROUTER__PORT=str(self.router_port), **(extra_env or {}))
        self.atoll = str(Path(sys.executable).parent / "atoll")
        self.deployments: set[str] = set()
        self._key = ""

    # --- plumbing -----------------------------------------------------------------
    def cli(self, *args: str, timeout: float = 600, cwd: Path = IRIS) -> str:
        """Run ``atoll ARGS`` (bounded); its stdout."""
        return run([self.atoll, *args], timeout=timeout, cwd=cwd, env=self.env).stdout

    def cli_json(self, *args: str, timeout: float = 600) -> Any:
        return json.loads(self.cli("-o", "json", *args, timeout=timeout))

    @property
    def router_url(self) -> str:
        return f"http://127.0.0.1:{self.router_port}/predict"

    # --- the example ----------------------------------------------------------------
    def setup(self, extra_files_mb: float = 0) -> None:
        """Model, dataset, project and one build (the build's venv is the slow part)."""
        model_files = [json.dumps({"name": "clf.pkl", "required": True})]
        if extra_files_mb:
            model_files.append(json.dumps({"name": "blob.bin", "required": False, "max_mb": extra_files_mb}))
        args = ["model", "new", "--name", MODEL, "--desc", "iris (bench)"]
        for spec in model_files:
            args += ["--model-file", spec]
        for name in ("measures.csv", "species.csv"):
            args += ["--data-file", json.dumps({"name": name, "required": True})]
        self.cli(*args)
        self.cli("ds", "new", "--model", MODEL, "--name", "iris", "--path", "datasets/iris")
        self.cli("proj", "new", "--name", self.proj, "--model", MODEL, "--home-dir", ".", "--desc", "bench")
        start = time.perf_counter()
        self.cli("proj", "build", "--name", self.proj, "--from-home", timeout=900)
        say(f"atoll build ready in {time.perf_counter() - start:.1f}s")

    def build_python(self) -> Path:
        """The python of the build's environment (what tasks run with)."""
        info = self.cli_json("bvers", "info", "--proj", self.proj, "--tag", "latest")
        return Path(info["details"]["env_dir"]) / "bin" / "python"

    def train(self, name: str) -> float:
        """``atoll train new`` of the example's notebook; wall seconds."""
        start = time.perf_counter()
        self.cli("train", "new", "--proj", self.proj, "--name", name, "--nb", "notebooks/train.ipynb",
                 "--dataset", f"{MODEL}:iris", "--params", '{"C": 1.0}', timeout=600)
        return time.perf_counter() - start

    def task_dir(self, name: str) -> Path:
        return self.home / "tasks" / self.proj / "train" / name

    def upload_version(self, name: str, path: Path, *options: str) -> None:
        self.cli("movers", "new", "--model", MODEL, "--name", name, "--path", str(path), *options, timeout=600)

    def deploy(self, name: str, version: str, replicas: int = 1, port: int | None = None) -> None:
        """``atoll depl new`` (returns once the replicas are healthy)."""
        args = ["depl", "new", "--name", name, "--proj", self.proj, "--nb", "notebooks/predict.ipynb",
                "--movers", f"{MODEL}:{version}", "-n", str(replicas)]
        if port:
            args += ["--port", str(port)]
        self.deployments.add(name)
        self.cli(*args, timeout=300)

    def replicas(self, name: str) -> list[dict[str, Any]]:
        """[{name, url, pid, state}] of a deployment, from the router's discovery file."""
        path = self.home / "run" / "deployments" / self.proj / f"{name}.json"
        for _ in range(100):
            try:
                data = json.loads(path.read_text())
                reps = [r for r in data["replicas"] if r.get("state") == "healthy"]
                if reps:
                    return reps
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"no healthy replica of {name} in {path}")

    def replica_header(self, name: str) -> str:
        """``x-atoll-replica-secret: ...`` of deployment ``name``: replicas answer predictions only with it."""
        found = json.loads((self.home / "run" / "router-keys" / "replica-secrets.json").read_text())
        return f"x-atoll-replica-secret: {found['secrets'][f'{self.proj}/{name}']}"

    def key_header(self) -> str:
        """``Authorization: Bearer <key>`` for this home's project (made once): the router wants one."""
        if not self._key:
            self._key = self.cli_json("key", "new", "--proj", self.proj, "--name", "bench")["key"]
        return f"Authorization: Bearer {self._key}"

    def router_pid(self) -> int | None:
        info = self.cli_json("isle", "router", "status")
        return info.get("pid")

    def remove(self, name: str) -> None:
        self.cli("-s", "depl", "rm", "--name", name, "--proj", self.proj, timeout=120)
        self.deployments.discard(name)

    def close(self) -> None:
        """Remove our deployments, stop the router, delete the home."""
        for name in list(self.deployments):
            try:
                self.remove(name)
            except Exception as exc:  # noqa: BLE001 - clean up as much as possible
                say(f"[yellow]removing deployment {name} failed: {exc}[/yellow]")
        try:
            self.cli("isle", "router", "stop", timeout=60)
        except Exception as exc:  # noqa: BLE001
            say(f"[yellow]stopping the router failed: {exc}[/yellow]")
        shutil.rmtree(self.home, ignore_errors=True)
