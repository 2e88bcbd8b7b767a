"""The file-store contract and the backend registry.

A file store maps keys (``/``-separated, no leading slash, e.g.
``models/iris/v1/clf.pkl``) to bytes. Backends are chosen by the
``file_store.type`` setting (or URL scheme)::

    local         LocalFileStore (directory under ATOLL_HOME; embedded default)
    s3            S3FileStore (AWS, MinIO, Ceph, the native files island)
    artifactory   ArtifactoryFileStore (a JFrog Artifactory repository)
    nexus         NexusFileStore (a Nexus 3 raw hosted repository)
    memory        MemoryFileStore (tests)

Backends implement five primitives; directory transfer, prefix deletion and
checks are built once here on top of them.
"""

from __future__ import annotations

import builtins
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

from atoll._registry import Backend, Registry
from atoll.errors import UsageError
from atoll.files.digest import DEFAULT as DEFAULT_DIGEST
from atoll.files.digest import check_algorithm, digest_file


def check_key(key: str) -> str:
    """Refuse keys that could escape the store (absolute, ``..``, empty parts) or that no
    file system or object store can name (control characters, text that is not UTF-8)."""
    parts = key.split("/")
    if (
        not key
        or key.startswith("/")
        or any(p in ("", ".", "..") for p in parts)
        or any(c < " " for c in key)
        or not key.isprintable() and not _utf8(key)
    ):
        raise UsageError(f"invalid file-store key {key!r}")
    return key


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class FileStore(ABC):
    """Abstract file store. The docstrings are the contract."""

    @abstractmethod
    def upload(self, local_path: Path, key: str) -> None:
        """Store the local file under ``key``, replacing what was there.

        Must be atomic for readers: a reader sees the old bytes or the new
        ones, never a partial file.

        Raises:
            NotFoundError: ``local_path`` does not exist.
            BackendError / BackendUnavailableError: the store failed.
        """

    @abstractmethod
    def download(self, key: str, local_path: Path) -> None:
        """Write the stored bytes of ``key`` to ``local_path`` (parents created).

        Raises:
            NotFoundError: no such key.
        """

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error."""

    @abstractmethod
    def list(self, prefix: str = "") -> builtins.list[str]:
        """Keys starting with ``prefix``, sorted."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """True when ``key`` is stored."""

    #: The digest new files are recorded with (``file_store.digest``; :mod:`atoll.files.digest`).
    #: Stores opened from the configuration (or a task's store settings) carry the configured one.
    digest: str = DEFAULT_DIGEST

    # Shared behaviour built on the primitives.

    def download_verified(
        self, key: str, local_path: Path, verify: Callable[[int, str], None], *, algorithm: str
    ) -> None:
        """:meth:`download`, then ``verify(size, hexdigest)`` of the bytes written, the digest
        computed with ``algorithm`` (``blake3`` or ``sha256``: the one the file was recorded
        with); a file ``verify`` refuses (by raising) is removed. Stores that can hash while
        copying override it.
        """
        check_algorithm(algorithm)
        local_path = Path(local_path)
        self.download(key, local_path)
        try:
            verify(local_path.stat().st_size, digest_file(local_path, algorithm))
        except BaseException:
            local_path.unlink(missing_ok=True)
            raise

    def upload_dir(self, local_dir: Path, prefix: str) -> builtins.list[str]:
        """Upload every file below ``local_dir`` under ``prefix/``; return the keys."""
        keys = []
        for root, _dirs, files in os.walk(local_dir):
            for file_name in sorted(files):
                path = Path(root, file_name)
                rel = path.relative_to(local_dir).as_posix()
                key = f"{prefix.rstrip('/')}/{rel}"
                self.upload(path, check_key(key))
                keys.append(key)
        return keys

    def download_dir(self, prefix: str, local_dir: Path) -> builtins.list[Path]:
        """Download every key under ``prefix/`` into ``local_dir``."""
        base = prefix.rstrip("/") + "/"
        paths = []
        for key in self.list(base):
            target = local_dir / key[len(base):]
            self.download(key, target)
            paths.append(target)
        return paths

    def delete_prefix(self, prefix: str) -> int:
        """Delete every key under ``prefix/``; return how many were removed."""
        keys = self.list(prefix.rstrip("/") + "/")
        for key in keys:
            self.delete(key)
        return len(keys)

    def close(self) -> None:
        """Release connections (idempotent)."""


FILE_STORES: Registry[FileStore] = Registry(
    "file store",
    {
        "artifactory": Backend("atoll.files.artifactory:ArtifactoryFileStore", "pip install 'atoll[artifactory]'"),
        "local": Backend("atoll.files.local:LocalFileStore"),
        "memory": Backend("atoll.testing.memory_files:MemoryFileStore"),
        "nexus": Backend("atoll.files.nexus:NexusFileStore", "pip install 'atoll[nexus]'"),
        "s3": Backend("atoll.files.s3:S3FileStore", "pip install 'atoll[s3]'"),
    },
)


def get_file_store(type_: str, **options: Any) -> FileStore:
    """Open the file store of backend ``type_`` with its options."""
    cls = FILE_STORES.load(type_)
    return cls(**options)
