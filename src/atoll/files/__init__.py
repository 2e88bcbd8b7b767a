"""File stores: where dataset, model-version and notebook files live."""

from atoll.files.base import FileStore, get_file_store

__all__ = ["FileStore", "get_file_store"]
