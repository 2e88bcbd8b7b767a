"""The local IDE: Jupyter Lab on loopback, answering only with its token, stopped cleanly."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from deploy_helpers import fake_build, free_port, processes_of

from atoll.config import load_config
from atoll.containers.base import TaskSpec
from atoll.containers.local.manager import LocalContainerManager
from atoll.containers.local.services import port_in_use
from atoll.errors import ConflictError
from atoll.testing.memory import MemoryMetadataStore
from atoll.testing.memory_files import MemoryFileStore
from support.processes import atoll_home


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[LocalContainerManager]:
    with atoll_home(tmp_path / "home"):
        yield LocalContainerManager(load_config(tmp_path), MemoryMetadataStore(), MemoryFileStore())


def test_the_ide_answers_only_with_its_token_and_stops(manager: LocalContainerManager, tmp_path: Path) -> None:
    project, build = fake_build(tmp_path / "build")
    port = free_port()
    token = "t0k3n-" + os.urandom(8).hex()
    spec = TaskSpec(kind="ide", project=project, build=build, name="ide", port=port)
    handle = manager.start_ide(spec, token)
    try:
        assert handle.url == f"http://127.0.0.1:{port}/lab?token={token}"
        status = f"http://127.0.0.1:{port}/api/status"
        assert httpx.get(status, timeout=10).status_code in (401, 403)
        assert httpx.get(status, params={"token": "wrong"}, timeout=10).status_code in (401, 403)
        assert httpx.get(status, params={"token": token}, timeout=10).status_code == 200
        assert httpx.get(status, headers={"Authorization": f"token {token}"}, timeout=10).status_code == 200
        # The token never appears on a command line.
        cmdline = Path(f"/proc/{handle.task_id}/cmdline").read_bytes()
        assert token.encode() not in cmdline
        # The notebooks of the build are what the IDE serves.
        contents = httpx.get(f"http://127.0.0.1:{port}/api/contents", params={"token": token}, timeout=10).json()
        assert "echo.ipynb" in {item["name"] for item in contents["content"]}
        with pytest.raises(ConflictError, match="already runs"):
            manager.start_ide(spec, token)
    finally:
        manager.stop_ide(project.name)
    assert not port_in_use(port) or not processes_of(Path(os.environ["ATOLL_HOME"]))
    assert processes_of(Path(os.environ["ATOLL_HOME"])) == []
    manager.stop_ide(project.name)  # stopping twice is fine


def test_edit_serves_the_project_directory_itself(manager: LocalContainerManager, tmp_path: Path) -> None:
    project, build = fake_build(tmp_path / "build")
    home_dir = tmp_path / "work"
    home_dir.mkdir()
    (home_dir / "draft.ipynb").write_text("{}")
    port = free_port()
    spec = TaskSpec(kind="ide", project=project, build=build, name="ide", port=port, edit_dir=home_dir)
    manager.start_ide(spec, "secret-token")
    try:
        contents = httpx.get(f"http://127.0.0.1:{port}/api/contents", params={"token": "secret-token"}, timeout=10)
        assert {item["name"] for item in contents.json()["content"]} == {"draft.ipynb"}
        saved = httpx.put(
            f"http://127.0.0.1:{port}/api/contents/new.txt",
            params={"token": "secret-token"},
            json={"type": "file", "format": "text", "content": "written from the IDE"},
            timeout=10,
        )
        assert saved.status_code in (200, 201)
        assert (home_dir / "new.txt").read_text() == "written from the IDE"
    finally:
        manager.stop_ide(project.name)
    assert (home_dir / "draft.ipynb").exists()  # stopping never touches the user's files
