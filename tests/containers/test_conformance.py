"""The container conformance suite on the managers that run everywhere: memory and local.

Local runs it twice: with host staging (the default) and once with fetch
staging, where the task fetches its own dataset from the file store. Swarm
(``tests/docker``) and Kubernetes run the same suite through
:func:`atoll.testing.conformance.containers.make_world`.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from atoll.backends import open_file_store, open_metadata_store, task_store_config
from atoll.config import Config, load_config
from atoll.containers.base import task_dir_for
from atoll.containers.local import LocalContainerManager
from atoll.testing.conformance.containers import (
    BackgroundDeployConformance,
    ContainerManagerConformance,
    ContainerWorld,
    OnBoardConformance,
    make_world,
)
from atoll.testing.memory import MemoryMetadataStore
from atoll.testing.memory_containers import MemoryContainerManager
from atoll.testing.memory_files import MemoryFileStore
from support.processes import atoll_home


@pytest.fixture(scope="class")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A throwaway ATOLL_HOME for the class (the managers stage tasks under it)."""
    with atoll_home(tmp_path_factory.mktemp("containers") / "home") as path:
        yield path


class TestMemoryContainerManager(ContainerManagerConformance, BackgroundDeployConformance):
    @pytest.fixture(scope="class")
    def world(self, home: Path) -> ContainerWorld:
        manager = MemoryContainerManager(Config(), MemoryMetadataStore(), MemoryFileStore())
        return make_world(
            manager, home.parent / "src", {}, kill=manager.kill,
            predict=lambda replica, body: manager.predict(replica.url or "", body), timeout=30,
        )


def _kill_runner(task_id: str) -> None:
    """SIGKILL the runner of a local training (not its shell, which records the exit status)."""
    project, _, name = task_id.split("/")
    shell = json.loads((task_dir_for("train", project, name) / "atoll" / "pid").read_text())["pid"]
    children = Path(f"/proc/{shell}/task/{shell}/children").read_text().split()
    os.kill(int(children[0]), signal.SIGKILL)


def _local_world(home: Path, staging: str) -> Iterator[ContainerWorld]:
    config = load_config(home.parent, environ={"ATOLL_HOME": str(home), "ATOLL_CONTAINER_MANAGER__STAGING": staging})
    metadata = open_metadata_store(config)
    files = open_file_store(config, metadata)
    manager = LocalContainerManager(config, metadata, files)
    assert manager.staging == staging
    try:
        yield make_world(manager, home.parent / "src", task_store_config(config, metadata), kill=_kill_runner)
    finally:
        metadata.close()


@pytest.mark.slow
class TestLocalContainerManager(ContainerManagerConformance, BackgroundDeployConformance, OnBoardConformance):
    @pytest.fixture(scope="class")
    def world(self, home: Path) -> Iterator[ContainerWorld]:
        yield from _local_world(home, "host")


@pytest.mark.slow
class TestLocalFetchStaging(OnBoardConformance):
    """Fetch staging on the local runtime: the runner fetches the dataset before the first cell."""

    @pytest.fixture(scope="class")
    def world(self, home: Path) -> Iterator[ContainerWorld]:
        yield from _local_world(home, "fetch")

    def test_the_host_stages_no_files_in_fetch_mode(self, world: ContainerWorld) -> None:
        from atoll.testing.conformance.containers import start_training, wait_ended

        record = wait_ended(world, start_training(world, "data.ipynb", datasets=[world.dataset]))
        root = task_dir_for("train", record.proj, record.name)
        assert (root / "atoll" / "meta" / "datasets" / f"{world.dataset.model}.{world.dataset.name}.json").is_file()
        logs = list(world.manager.task_logs(record.task_id or ""))
        assert any(line.startswith("atoll: fetched data/") for line in logs), logs[-20:]
