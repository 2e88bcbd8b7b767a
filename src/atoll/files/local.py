"""A file store in a local directory: the embedded default.

Keys map to files below ``root``. Uploads are atomic for readers: the bytes
are copied to a hidden temporary file in the target directory, flushed to
disk, then renamed over the key (``os.replace``), so a reader sees the old
file or the new one, never a partial one. Copies are made by the kernel
(``copy_file_range``/``sendfile``: no user-space buffers), so a copy runs
close to ``cp``; when a digest is needed (publish, verified fetch) a second
thread hashes the copy as it is written (:mod:`atoll.files.copy_hash`), with
BLAKE3 for new files (faster than the copy) or sha256 for files recorded so.
Downloads are atomic too: a temporary file renamed into place, after its
checksum was accepted by :meth:`LocalFileStore.download_verified`.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

from atoll.errors import BackendError, NotFoundError, UsageError
from atoll.files.base import FileStore, check_key
from atoll.files.copy_hash import copy_hashing
from atoll.files.digest import check_algorithm, digest_file

TMP_PREFIX = ".atoll-tmp-"  # hidden temporaries; never listed as keys


class LocalFileStore(FileStore):
    """Files under a directory.

    Args:
        root: the store's directory (created when missing).
        fsync: flush every upload to disk before it becomes visible, so a
            recorded file survives a power cut. Costs one disk write-back
            per upload; turn off only for scratch stores.
    """

    def __init__(self, root: str | Path, fsync: bool = True) -> None:
        self.root = Path(root).expanduser().absolute()
        self.fsync = fsync
        self.url = f"file://{self.root}"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackendError(f"cannot create file store directory {self.root}: {exc.strerror}") from exc
        self._real_root = self.root.resolve()

    def __repr__(self) -> str:
        return f"LocalFileStore({str(self.root)!r})"

    # Paths.

    def _path(self, key: str) -> Path:
        """The file of ``key``; refuses keys that escape the root (also via symlinks)."""
        check_key(key)
        path = self.root / key
        real = path.resolve()
        if real != self._real_root and self._real_root not in real.parents:
            raise UsageError(f"invalid file-store key {key!r}: it leaves the store directory")
        if any(part.startswith(TMP_PREFIX) for part in key.split("/")):
            raise UsageError(f"invalid file-store key {key!r}: {TMP_PREFIX!r} is reserved")
        return path

    def _temp_in(self, directory: Path) -> Path:
        """A new hidden temporary file in ``directory`` (created with its parents)."""
        for _ in range(5):  # a concurrent delete may prune the directory we just made
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / f"{TMP_PREFIX}{secrets.token_hex(8)}"
            try:  # mode 0666 less the umask, like any new file (mkstemp would force 0600)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except (FileNotFoundError, FileExistsError):
                continue
            os.close(fd)
            return path
        raise BackendError(f"cannot create a temporary file in {directory}")

    # Primitives.

    def upload(self, local_path: Path, key: str) -> None:
        self._upload(Path(local_path), key, algorithm=None)

    def upload_hashing(self, local_path: Path, key: str, algorithm: str) -> tuple[int, str]:
        """Upload and return ``(size, hexdigest)`` of the bytes stored, reading the file once;
        the digest of ``algorithm`` (``blake3`` or ``sha256``).

        A subclass that overrides :meth:`upload` keeps its override in charge.
        """
        check_algorithm(algorithm)
        if type(self).upload is not LocalFileStore.upload:
            if not Path(local_path).is_file():
                raise NotFoundError(f"no such file: {local_path}")
            digest = digest_file(Path(local_path), algorithm)
            size = Path(local_path).stat().st_size
            self.upload(local_path, key)
            return size, digest
        result = self._upload(Path(local_path), key, algorithm=algorithm)
        if result is None:  # pragma: no cover - an algorithm always returns a digest
            raise BackendError("internal error: no digest")
        return result

    def _upload(self, local_path: Path, key: str, *, algorithm: str | None) -> tuple[int, str] | None:
        target = self._path(key)
        if not local_path.is_file():
            raise NotFoundError(f"no such file: {local_path}")
        try:
            tmp = self._temp_in(target.parent)
        except OSError as exc:
            raise BackendError(f"cannot write {key!r} to {self.root}: {exc.strerror}") from exc
        try:
            result = None
            if algorithm is not None:
                result = _copy_hashing(local_path, tmp, self.fsync, algorithm)
            else:
                _copy(local_path, tmp, self.fsync)
            os.replace(tmp, target)
        except FileNotFoundError as exc:
            tmp.unlink(missing_ok=True)
            raise NotFoundError(f"no such file: {local_path}") from exc
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise BackendError(f"cannot store {key!r} in {self.root}: {exc.strerror or exc}") from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return result

    def download(self, key: str, local_path: Path) -> None:
        self._download(key, Path(local_path), shutil.copyfile)

    def download_verified(
        self, key: str, local_path: Path, verify: Callable[[int, str], None], *, algorithm: str
    ) -> None:
        """Copy and hash in one pass; the file appears at ``local_path`` only once ``verify`` accepted it.

        A file ``verify`` refuses (a flipped byte, a truncated store file) is
        never visible under ``local_path``: its temporary is removed. A
        subclass that overrides :meth:`download` keeps its override in charge.
        """
        if type(self).download is not LocalFileStore.download:
            super().download_verified(key, local_path, verify, algorithm=algorithm)
            return
        check_algorithm(algorithm)

        def copy_verifying(source: Path, tmp: Path) -> None:
            verify(*copy_hashing(source, tmp, algorithm))

        self._download(key, Path(local_path), copy_verifying)

    def _download(self, key: str, local_path: Path, copy: Callable[[Path, Path], object]) -> None:
        source = self._path(key)
        if not source.is_file():
            raise NotFoundError(f"no file {key!r} in the file store")
        tmp: Path | None = None
        try:
            tmp = self._temp_in(local_path.parent)
            copy(source, tmp)
            os.replace(tmp, local_path)
        except FileNotFoundError as exc:  # deleted while we copied
            if tmp is not None:
                tmp.unlink(missing_ok=True)
            raise NotFoundError(f"no file {key!r} in the file store") from exc
        except OSError as exc:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
            raise BackendError(f"cannot download {key!r} to {local_path}: {exc.strerror or exc}") from exc
        except BaseException:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
            raise

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except IsADirectoryError:
            return  # a key prefix, not a key
        except OSError as exc:
            raise BackendError(f"cannot delete {key!r} from {self.root}: {exc.strerror}") from exc
        self._prune(path.parent)

    def _prune(self, directory: Path) -> None:
        """Remove directories left empty by a delete, up to the root."""
        while directory != self.root and self.root in directory.parents:
            try:
                directory.rmdir()
            except OSError:  # not empty, or already gone
                return
            directory = directory.parent

    def list(self, prefix: str = "") -> list[str]:
        if prefix.startswith("/") or ".." in prefix.split("/"):
            raise UsageError(f"invalid file-store prefix {prefix!r}")
        # Walk only the deepest directory the prefix fully names.
        base_rel = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        base = self.root / base_rel if base_rel else self.root
        keys: list[str] = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith(TMP_PREFIX)]
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            for file_name in filenames:
                if file_name.startswith(TMP_PREFIX):
                    continue
                key = file_name if rel_dir == "." else f"{rel_dir}/{file_name}"
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()


def _flush(target: Path) -> None:
    """Flush the file ``target`` to disk."""
    fd = os.open(target, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy(source: Path, target: Path, fsync: bool) -> None:
    """Kernel-side copy (sendfile), then flush the target."""
    shutil.copyfile(source, target)
    if fsync:
        _flush(target)


def _copy_hashing(source: Path, target: Path, fsync: bool, algorithm: str) -> tuple[int, str]:
    """Copy in the kernel while another thread hashes the copy, then flush it.

    Measured on 300 MB (bench/files_bench.py): pushing every byte through a
    Python buffer made page-cache writes the bottleneck; the kernel copy plus
    a hash of the target's pages through ``mmap`` run side by side. The
    recorded checksum is that of the bytes stored (what a fetch then checks),
    not of a second read of the source. With ``fsync`` each chunk's writeback
    to disk is started as soon as it is copied, so the final flush has little
    left to wait for (``cp`` then ``sync`` waits for all of it).
    """
    size, digest = copy_hashing(source, target, algorithm, writeback=fsync)  # the disk writes overlap the copy
    if fsync:
        _flush(target)
    return size, digest
