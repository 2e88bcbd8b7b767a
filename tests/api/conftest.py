"""API tests run on the memory backends, with a recording fake container manager."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from atoll.api.context import AtollContext
from atoll.config import Config
from atoll.testing.memory import MemoryMetadataStore
from atoll.testing.memory_files import MemoryFileStore


class FakeContainers:
    """Records what the API asked the runtime to remove."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def remove_build(self, build: Any) -> None:
        self.calls.append(("remove_build", build.name))

    def remove_service(self, project: str, name: str) -> None:
        self.calls.append(("remove_service", f"{project}:{name}"))

    def stop_task(self, task_id: str) -> None:
        self.calls.append(("stop_task", task_id))

    def remove_task(self, task_id: str) -> None:
        self.calls.append(("remove_task", task_id))

    def stop_ide(self, project: str) -> None:
        self.calls.append(("stop_ide", project))


@pytest.fixture
def ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AtollContext:
    monkeypatch.setenv("ATOLL_HOME", str(tmp_path / "home"))
    work = tmp_path / "work"
    work.mkdir()
    context = AtollContext(config=Config(), cwd=work)
    context.__dict__["metadata"] = MemoryMetadataStore()
    context.__dict__["files"] = MemoryFileStore()
    context.__dict__["containers"] = FakeContainers()
    return context


@pytest.fixture
def make_dir() -> Any:
    """Factory of directories holding given files."""
    return _make_dir


def _make_dir(base: Path, files: dict[str, bytes | int]) -> Path:
    """A directory holding ``files`` (bytes, or a size in bytes of zeros)."""
    base.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        data = content if isinstance(content, bytes) else b"\0" * content
        (base / name).write_bytes(data)
    return base
