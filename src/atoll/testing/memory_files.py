"""An in-memory file store for tests (``file_store.type: memory``)."""

from __future__ import annotations

import threading
from pathlib import Path

from atoll.errors import NotFoundError, UsageError
from atoll.files.base import FileStore, check_key


class MemoryFileStore(FileStore):
    """Keys to bytes in a dict; thread-safe; gone with the process.

    ``objects`` is public so tests can inspect or tamper with stored bytes.
    """

    def __init__(self, **_options: object) -> None:
        self.url = "memory://"
        self.objects: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def upload(self, local_path: Path, key: str) -> None:
        check_key(key)
        try:
            data = Path(local_path).read_bytes()
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise NotFoundError(f"no such file: {local_path}") from exc
        with self._lock:
            self.objects[key] = data

    def download(self, key: str, local_path: Path) -> None:
        check_key(key)
        with self._lock:
            data = self.objects.get(key)
        if data is None:
            raise NotFoundError(f"no file {key!r} in the file store")
        local_path = Path(local_path)
        local_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = local_path.with_name(f".{local_path.name}.part")
        tmp.write_bytes(data)
        tmp.replace(local_path)

    def delete(self, key: str) -> None:
        check_key(key)
        with self._lock:
            self.objects.pop(key, None)

    def list(self, prefix: str = "") -> list[str]:
        if prefix.startswith("/") or ".." in prefix.split("/"):
            raise UsageError(f"invalid file-store prefix {prefix!r}")
        with self._lock:
            return sorted(k for k in self.objects if k.startswith(prefix))

    def exists(self, key: str) -> bool:
        check_key(key)
        with self._lock:
            return key in self.objects
