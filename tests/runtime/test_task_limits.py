"""A resource profile and mounts on the local runtime: what the processes really get.

Local tasks are processes: the profile's memory limit is their ``RLIMIT_DATA``,
its CPU limit their affinity; a mount is a link at ``<task dir>/<DST>`` that
``atoll.toolkit.mount_path`` resolves.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deploy_helpers import fake_build, free_port, kill_all, processes_of, write_notebook

from atoll.api import builds
from atoll.api.builds import save_build
from atoll.api.context import AtollContext
from atoll.config import ResourceProfile, load_config
from atoll.containers.base import TaskSpec
from atoll.containers.local.manager import LocalContainerManager
from atoll.containers.spec import parse_mounts
from atoll.domain.records import Project
from atoll.testing.memory import MemoryMetadataStore
from atoll.testing.memory_files import MemoryFileStore

MB = 1024 * 1024


def _limits(pid: int) -> tuple[int, int]:
    """(soft RLIMIT_DATA in bytes, CPUs allowed) of a running process."""
    line = next(x for x in Path(f"/proc/{pid}/limits").read_text().splitlines() if x.startswith("Max data size"))
    return int(line.split()[3]), len(os.sched_getaffinity(pid))


def test_local_replicas_run_under_the_profile_and_see_the_mount(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATOLL_HOME", str(tmp_path / "home"))
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "hello.txt").write_text("from the host")
    manager = LocalContainerManager(load_config(tmp_path), MemoryMetadataStore(), MemoryFileStore())
    project, build = fake_build(tmp_path / "build")
    spec = TaskSpec(kind="deploy", project=project, build=build, name="limited", notebook="echo.ipynb", replicas=1,
                    meta={"deployment": {"notebook": "echo.ipynb", "params": {}}},
                    profile=ResourceProfile(cpu_limit=0.5, memory_limit=700), profile_name="small",
                    mounts=parse_mounts([f"{shared}:/mnt/shared:ro"], "local"))
    try:
        replicas = manager.deploy(spec, 60, lambda line: None)
        assert [r.state for r in replicas] == ["healthy"]
        status = json.loads((tmp_path / "home" / "run" / "services" / "echo" / "limited" / "status.json").read_text())
        replica = status["replicas"][0]
        assert _limits(replica["pid"]) == (700 * MB, 1)
        task_dir = Path(json.loads((tmp_path / "home" / "run" / "services" / "echo" / "limited" / "spec.json")
                                   .read_text())["replicas"][0]["task_dir"])
        assert (task_dir / "mnt" / "shared" / "hello.txt").read_text() == "from the host"
    finally:
        manager.remove_service("echo", "limited")
        kill_all(processes_of(tmp_path / "home"))


@pytest.mark.slow
def test_cli_depl_new_records_and_applies_the_profile_and_the_mounts(tmp_path: Path) -> None:
    home, shared = tmp_path / "home", tmp_path / "shared"
    shared.mkdir()
    env = {**os.environ, "ATOLL_HOME": str(home), "ATOLL_ROUTER__PORT": str(free_port()),
           "ATOLL_CONTAINER_MANAGER__RESOURCE_PROFILES": '{"serving": {"cpu_limit": 1, "memory_limit": 900}}'}
    ctx = AtollContext(load_config(tmp_path, environ=env), cwd=tmp_path)
    try:
        project, build = fake_build(tmp_path / "build")
        ctx.metadata.create(Project(name=project.name))
        save_build(ctx, build)
    finally:
        ctx.close()

    def atoll(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "atoll.cli.main", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300, check=False)

    try:
        done = atoll("depl", "new", "--proj", "echo", "--name", "svc", "--nb", "echo.ipynb", "--rp", "serving",
                     "-m", f"{shared}:/mnt/shared:ro", "--timeout", "120")
        assert done.returncode == 0, done.stderr
        info = json.loads(atoll("-o", "json", "depl", "info", "--proj", "echo", "--name", "svc").stdout)
        assert info["availability"] == "1/1"
        assert info["resource_profile"] == {"name": "serving", "cpu_limit": 1.0, "memory_limit": 900}
        assert info["mounts"] == [{"source": str(shared), "target": "/mnt/shared", "read_only": True,
                                   "volume": False}]
        pid = json.loads((home / "run" / "services" / "echo" / "svc" / "status.json").read_text())["replicas"][0]["pid"]
        assert _limits(pid) == (900 * MB, 1)
    finally:
        atoll("depl", "rm", "--proj", "echo", "--name", "svc")
        atoll("isle", "router", "stop")
        leftovers = processes_of(home)
        kill_all(leftovers)
    assert leftovers == [], "processes were left running"


# ------------------------------------------------------------------ a training, through the CLI

HOG_CELLS = [
    "from atoll.toolkit import mount_path\nprint('mounted:', open(mount_path('/mnt/in', 'hello.txt')).read())",
    "import os\nprint('cpus:', len(os.sched_getaffinity(0)))",
    # np.empty: were the limit not enforced, nothing would be touched (the test fails, the machine is fine).
    "import numpy as np\nblock = np.empty(size_mb * 1024 * 1024 // 8)\nprint('allocated', block.nbytes)",
]
PROFILES = '{"tiny": {"cpu_limit": 1, "memory_limit": 1024, "gpu": 1}}'


@pytest.fixture
def limited(iris: Any) -> Iterator[Any]:
    """The iris session with a notebook allocating more than the ``tiny`` profile allows, built as ``limits``."""
    write_notebook(iris.project_dir / "notebooks" / "hog.ipynb", HOG_CELLS, params="size_mb = 4096")
    builds.build_project(iris.ctx, "iris", tag="limits", source="home", log=lambda _line: None)
    yield iris
    deadline = time.monotonic() + 20
    while processes_of(iris.home) and time.monotonic() < deadline:
        time.sleep(0.2)
    kill_all(processes_of(iris.home))


def _cli(session: Any, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ATOLL_HOME": str(session.home), "ATOLL_CONTAINER_MANAGER__RESOURCE_PROFILES": PROFILES}
    return subprocess.run([sys.executable, "-m", "atoll.cli.main", *args], cwd=session.project_dir, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.slow
def test_a_training_over_its_memory_limit_fails_clearly(limited: Any, tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("hello from the host")
    done = _cli(limited, "train", "new", "--proj", "iris", "--name", "hog", "--tag", "limits",
                "--nb", "notebooks/hog.ipynb", "--rp", "tiny", "-m", f"{tmp_path}:/mnt/in:ro")
    assert done.returncode == 1, done.stderr
    assert "failed in cell 3: MemoryError: Unable to allocate 4.00 GiB" in done.stderr, done.stderr
    assert "(over the memory_limit of resource profile tiny: 1024 MB)" in done.stderr
    assert "mounted: hello from the host" in done.stdout and "cpus: 1" in done.stdout

    info = _cli(limited, "-o", "json", "train", "info", "--proj", "iris", "--name", "hog")
    record = json.loads(info.stdout)
    assert record["task"]["state"] == "FAILED"
    assert record["resource_profile"] == {"name": "tiny", "cpu_limit": 1.0, "memory_limit": 1024, "gpu": 1,
                                          "note": "not enforced on local: gpu"}
    assert record["mounts"] == [{"source": str(tmp_path), "target": "/mnt/in", "read_only": True, "volume": False}]
    shown = _cli(limited, "train", "info", "--proj", "iris", "--name", "hog").stdout
    assert "not enforced on local: gpu" in shown and "/mnt/in" in shown
