"""The context every API call works in: config plus lazily opened backends."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from atoll.config import Config, load_config

if TYPE_CHECKING:
    from typing import Self  # Python 3.11+; annotations are not evaluated at run time (3.10 works)

    from atoll.containers.base import ContainerManager
    from atoll.files.base import FileStore
    from atoll.metadata.base import MetadataStore


class AtollContext:
    """Config and the three plug points, opened on first use.

    Args:
        config: the effective config (loaded from the layers when omitted).
        cwd: working directory used to find the current project.
    """

    def __init__(self, config: Config | None = None, cwd: Path | None = None) -> None:
        self.cwd = (cwd or Path.cwd()).resolve()
        self.config = config or load_config(self.cwd)

    @cached_property
    def metadata(self) -> MetadataStore:
        from atoll.backends import open_metadata_store

        return open_metadata_store(self.config)

    @cached_property
    def chests(self) -> MetadataStore:
        """The chest store in ATOLL_HOME, where every treasure chest lives (never the configured store)."""
        from atoll.backends import open_chest_store

        return open_chest_store(self.config)

    @cached_property
    def files(self) -> FileStore:
        from atoll.backends import open_file_store

        return open_file_store(self.config, self.metadata)

    @cached_property
    def containers(self) -> ContainerManager:
        from atoll.containers.base import get_container_manager

        return get_container_manager(self.config, self.metadata, self.files)

    def use_metadata(self, store: MetadataStore) -> None:
        """Use ``store`` as the metadata store from now on (``atoll check --repair`` opens
        one that may be created empty); the one opened before, if any, is closed."""
        previous = self.__dict__.pop("metadata", None)
        if previous is not None and previous is not store:
            previous.close()
        self.__dict__["metadata"] = store

    def close(self) -> None:
        for name in ("files", "metadata", "chests"):
            backend = self.__dict__.pop(name, None)
            if backend is not None:
                backend.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
