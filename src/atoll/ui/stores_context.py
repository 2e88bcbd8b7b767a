"""The context of the ui island in a container: the stores it was handed, no container manager.

The island (``atoll isle ui setup`` on swarm) receives the store settings a
task receives (:mod:`atoll.task.stores`, as a Docker secret). It gets no
Docker socket: that would hand whoever holds the UI token the host. So the
pages it serves show every record, but replica health, traffic, training
logs and test predictions, which need the container manager, say so instead.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atoll.api.context import AtollContext
from atoll.config import Config
from atoll.errors import UsageError
from atoll.task.meta import read_json
from atoll.task.stores import open_task_stores

if TYPE_CHECKING:
    from atoll.containers.base import ContainerManager
    from atoll.metadata.base import MetadataStore

NO_RUNTIME = ("the ui island sees the records only, not the container manager "
              "(replicas, logs and test predictions: run `atoll ui` on the host)")


class NoRuntimeError(UsageError):
    """What the island answers where a page needs the container manager."""


class StoresContext(AtollContext):
    """An :class:`AtollContext` over already opened stores, without a container manager."""

    def __init__(self, store_config: dict[str, Any]) -> None:
        super().__init__(config=Config(), cwd=Path("/"))
        metadata, files = open_task_stores(store_config)
        self.use_metadata(metadata)
        self.__dict__["files"] = files  # the cached_property's slot: the stores were opened above

    @cached_property
    def containers(self) -> ContainerManager:
        raise NoRuntimeError(NO_RUNTIME)

    @cached_property
    def chests(self) -> MetadataStore:
        """The store handed over: with the embedded stores it is ATOLL_HOME's, where chests live (the
        island lists them, never decrypts them: the key is masked)."""
        return self.metadata

    def close(self) -> None:
        self.__dict__.pop("chests", None)  # the metadata store, closed as such
        super().close()


def stores_context(path: Path) -> StoresContext:
    """The context for the store settings in ``path`` (the island's Docker secret).

    Raises:
        NotFoundError / UsageError / ConfigError: the file is missing or malformed.
    """
    return StoresContext(read_json(path, "store settings"))


__all__ = ["NO_RUNTIME", "NoRuntimeError", "StoresContext", "stores_context"]
