"""Lightweight files: small artifacts kept in the metadata database itself.

``--lightweight`` (``ds new``, ``movers new``, ``Publisher(lightweight=True)``)
stores a dataset's or model version's files as blobs of the metadata store
(table ``blobs`` on SQLite/PostgreSQL, collection ``atoll_blobs`` on
MongoDB) under keys starting with ``lightweight/``. Loading such a model
then needs no round trip to the file manager.

:class:`LightweightFileStore` makes that invisible to the rest of Atoll: it
wraps the configured file store and sends ``lightweight/`` keys to the
metadata store's blobs, every other key to the file store. The stores opened
from the configuration (:mod:`atoll.backends`) come wrapped, so publishing,
staging, fetching (checksums verified as for any file) and deleting work
unchanged.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from pathlib import Path
from typing import Any

from atoll.errors import NotFoundError, UsageError, ValidationError
from atoll.files.base import FileStore, check_key
from atoll.files.digest import DEFAULT as DEFAULT_DIGEST
from atoll.files.digest import SHA256, check_algorithm, digest_file
from atoll.metadata.base import MetadataStore

PREFIX = "lightweight/"
DEFAULT_MAX_MB = 16.0
_MB = 1024 * 1024


def is_lightweight(key: str | None) -> bool:
    """Whether a key (or a record's ``store_key``) lives in the metadata store."""
    return bool(key) and str(key).startswith(PREFIX)


class LightweightFileStore(FileStore):
    """A file store plus the metadata store's blobs for ``lightweight/`` keys.

    Args:
        files: the configured file store (owned: closed with this one).
        metadata: the metadata store holding the blobs (not owned).
        max_mb: largest lightweight file (``metadata.lightweight_max_mb``).
        digest: what new files are recorded with (``file_store.digest``).
    """

    def __init__(self, files: FileStore, metadata: MetadataStore, max_mb: float = DEFAULT_MAX_MB,
                 digest: str = DEFAULT_DIGEST) -> None:
        self.files = files
        self.metadata = metadata
        self.max_bytes = int(max_mb * _MB)
        self.digest = check_algorithm(digest)

    def __getattr__(self, name: str) -> Any:
        # Settings of the wrapped store (root, url, bucket...) stay readable.
        return getattr(self.__dict__["files"], name)

    def __repr__(self) -> str:
        return f"LightweightFileStore({self.files!r}, {self.metadata!r})"

    def check_size(self, path: Path) -> None:
        """Refuse a file over the cap before anything is stored.

        Raises:
            ValidationError: the file is bigger than ``metadata.lightweight_max_mb``.
        """
        size = Path(path).stat().st_size
        if size > self.max_bytes:
            raise ValidationError(
                f"{Path(path).name} is {size / _MB:.2f} MB, over the lightweight limit of "
                f"{self.max_bytes / _MB:g} MB (metadata.lightweight_max_mb); store it without --lightweight"
            )

    def upload(self, local_path: Path, key: str) -> None:
        check_key(key)
        if not is_lightweight(key):
            self.files.upload(local_path, key)
        else:
            self.upload_hashing(local_path, key, SHA256)

    def upload_hashing(self, local_path: Path, key: str, algorithm: str) -> tuple[int, str]:
        """Upload and return ``(size, hexdigest)``, the digest of ``algorithm``."""
        check_key(key)
        check_algorithm(algorithm)
        if not is_lightweight(key):
            inner = getattr(self.files, "upload_hashing", None)
            if callable(inner):
                size, digest = inner(local_path, key, algorithm)
                return int(size), str(digest)
            digest = self._digest(Path(local_path), algorithm)
            self.files.upload(local_path, key)
            return Path(local_path).stat().st_size, digest
        if not Path(local_path).is_file():
            raise NotFoundError(f"cannot upload {local_path}: no such file")
        self.check_size(Path(local_path))
        # The blobs table keeps its own sha256 (checked on every read); the record gets ``algorithm``'s.
        digest = None if algorithm == SHA256 else self._digest(Path(local_path), algorithm)
        size, sha256 = self.metadata.put_blob(key, Path(local_path))
        return size, digest or sha256

    @staticmethod
    def _digest(path: Path, algorithm: str) -> str:
        try:
            return digest_file(path, algorithm)
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise NotFoundError(f"cannot upload {path}: no such file") from exc

    def download(self, key: str, local_path: Path) -> None:
        check_key(key)
        if not is_lightweight(key):
            self.files.download(key, local_path)
            return
        data = self.metadata.get_blob(key)
        local_path = Path(local_path)
        local_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = local_path.with_name(f".{local_path.name}.part")
        try:
            tmp.write_bytes(data)
            tmp.replace(local_path)
        finally:
            tmp.unlink(missing_ok=True)

    def download_verified(
        self, key: str, local_path: Path, verify: Callable[[int, str], None], *, algorithm: str
    ) -> None:
        check_key(key)
        if not is_lightweight(key):
            self.files.download_verified(key, local_path, verify, algorithm=algorithm)
        else:
            super().download_verified(key, local_path, verify, algorithm=algorithm)

    def delete(self, key: str) -> None:
        check_key(key)
        if is_lightweight(key):
            self.metadata.delete_blob(key)
        else:
            self.files.delete(key)

    def list(self, prefix: str = "") -> builtins.list[str]:
        keys = [k for k in self.files.list(prefix) if not is_lightweight(k)]
        if is_lightweight(prefix) or PREFIX.startswith(prefix):
            try:
                keys.extend(self.metadata.list_blobs(prefix))
            except UsageError:  # a metadata store without blobs holds no lightweight files
                pass
        return sorted(keys)

    def exists(self, key: str) -> bool:
        check_key(key)
        if not is_lightweight(key):
            return self.files.exists(key)
        return key in self.metadata.list_blobs(key)

    def close(self) -> None:
        self.files.close()


__all__ = ["PREFIX", "LightweightFileStore", "is_lightweight"]
