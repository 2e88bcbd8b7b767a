"""API tests run on the memory backends, the memory container manager recording what it was asked to remove."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from atoll.api.context import AtollContext
from atoll.config import Config
from atoll.files.lightweight import LightweightFileStore
from atoll.testing.memory import MemoryMetadataStore
from atoll.testing.memory_containers import MemoryContainerManager
from atoll.testing.memory_files import MemoryFileStore


@pytest.fixture
def ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AtollContext:
    monkeypatch.setenv("ATOLL_HOME", str(tmp_path / "home"))
    work = tmp_path / "work"
    work.mkdir()
    config = Config.model_validate(
        {"metadata": {"url": "memory://"}, "file_store": {"type": "memory"}, "container_manager": {"type": "memory"}}
    )
    context = AtollContext(config=config, cwd=work)
    # Opened through the registries, as a configured context would; recorded removals in .calls.
    assert isinstance(context.metadata, MemoryMetadataStore)
    assert isinstance(context.files, LightweightFileStore)  # small --lightweight files go to the metadata store
    assert isinstance(context.files.files, MemoryFileStore)
    assert isinstance(context.containers, MemoryContainerManager)
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
