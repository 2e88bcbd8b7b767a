"""Copy a file and compute the digest (BLAKE3 or sha256) of the copy in the same pass.

The copy is made by the kernel (``copy_file_range``, else ``sendfile``, else
``read``/``write``) in chunks on the calling thread; a second thread hashes
each chunk of the *target* as soon as it is written, reading it through
``mmap`` (no copy into a Python buffer; ``hashlib`` releases the GIL on large
buffers, and so does ``blake3``). What is hashed is therefore exactly what
the target holds, as if it were read back after the copy, while the two run
side by side on two cores: a fetch costs about ``max(copy, hash)`` instead
of their sum.

The hash is the floor when it is slower than the copy: sha256 is, on this
project's CPUs (``bench/run --only files`` shows both); BLAKE3 on one
thread is not, so a BLAKE3 fetch is bound by the copy. The hasher keeps
BLAKE3 on one thread (``max_threads=1``): the copy needs the other core.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import sys
import threading
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from atoll.files.digest import check_algorithm, new_hash

CHUNK = 8 << 20  # a multiple of mmap.ALLOCATIONGRANULARITY: the hasher maps chunk-aligned regions
_NO_KERNEL_COPY = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EBADF,
                   errno.ENOTSOCK}  # the last: macOS sends files to sockets only


def copy_hashing(source: Path, target: Path, algorithm: str, *, writeback: bool = False) -> tuple[int, str]:
    """Copy ``source`` over ``target`` (created or truncated) and return ``(size, hexdigest)`` of
    the target's bytes, the digest of ``algorithm`` (``blake3`` or ``sha256``).

    ``writeback``: the caller will ``fsync`` the target, so start writing each chunk to disk as soon
    as it is copied (Linux ``sync_file_range``, without waiting): the disk writes then overlap the
    copy instead of all waiting for the final ``fsync``. Durability still comes from that ``fsync``.

    Raises:
        OSError: reading, writing or mapping failed (the target is left as it is).
        UsageError: an unknown algorithm.
    """
    check_algorithm(algorithm)
    src = os.open(source, os.O_RDONLY)
    try:
        dst = os.open(target, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            return _copy_fds(src, dst, algorithm, _writeback_starter() if writeback else None)
        finally:
            os.close(dst)
    finally:
        os.close(src)


class _Hasher(threading.Thread):
    """Hashes ``fd`` up to the offset the copier has reached, chunk by chunk."""

    def __init__(self, fd: int, algorithm: str) -> None:
        super().__init__(name="atoll-copy-hash", daemon=True)
        self.fd = fd
        self.digest = new_hash(algorithm, threads=1)
        self.error: BaseException | None = None
        self._written = 0
        self._final = False  # the copy ended: hash whatever is left, even a partial chunk
        self._abort = False  # the copy failed: stop now
        self._cond = threading.Condition()

    def advance(self, written: int) -> None:
        with self._cond:
            self._written = written
            self._cond.notify()

    def finish(self, *, failed: bool = False) -> None:
        with self._cond:
            self._final = True
            self._abort = failed
            self._cond.notify()

    def run(self) -> None:
        try:
            self._hash()
        except BaseException as exc:  # noqa: BLE001 - re-raised on the copying thread
            self.error = exc

    def _hash(self) -> None:
        done = 0
        while True:
            with self._cond:
                while not self._final and self._written - done < CHUNK:
                    self._cond.wait()
                if self._abort:
                    return
                end = self._written if self._final else self._written - (self._written - done) % CHUNK
                final = self._final
            while done < end:
                size = min(CHUNK, end - done)
                self._update(done, size)
                done += size
            if final:
                return

    def _update(self, offset: int, size: int) -> None:
        try:
            with mmap.mmap(self.fd, size, offset=offset, access=mmap.ACCESS_READ) as view:
                self.digest.update(view)
            return
        except (OSError, ValueError):  # a file system without mmap: read it instead
            pass
        while size:
            data = os.pread(self.fd, min(size, 1 << 20), offset)
            if not data:
                raise OSError(errno.EIO, "the copy shrank while it was hashed")
            self.digest.update(data)
            offset += len(data)
            size -= len(data)


@lru_cache(maxsize=1)
def _writeback_starter() -> Callable[[int, int, int], object] | None:
    """``start(fd, offset, size)``: libc's ``sync_file_range(..., SYNC_FILE_RANGE_WRITE)`` on Linux, else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        sync_file_range = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):  # pragma: no cover - every Linux libc has it
        return None
    sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    sync_file_range.restype = ctypes.c_int
    write = 2  # SYNC_FILE_RANGE_WRITE: start writeback of the range's dirty pages, do not wait
    # Its result is not checked: a failure only means the final fsync does all the writing.
    return lambda fd, offset, size: sync_file_range(fd, offset, size, write)


def _copy_fds(src: int, dst: int, algorithm: str,
              writeback: Callable[[int, int, int], object] | None = None) -> tuple[int, str]:
    hasher = _Hasher(dst, algorithm)
    hasher.start()
    written = 0
    failed = True
    try:
        mode = ("copy_file_range" if hasattr(os, "copy_file_range")
                else "sendfile" if hasattr(os, "sendfile") else "read")
        buffer: bytearray | None = None
        while True:
            if mode == "copy_file_range":
                try:
                    n = os.copy_file_range(src, dst, CHUNK)
                except OSError as exc:
                    if exc.errno not in _NO_KERNEL_COPY or written:
                        raise
                    mode = "sendfile"
                    continue
            elif mode == "sendfile":
                try:
                    n = os.sendfile(dst, src, None, CHUNK)
                except OSError as exc:
                    if exc.errno not in _NO_KERNEL_COPY or written:
                        raise
                    mode = "read"
                    continue
            else:
                buffer = buffer or bytearray(CHUNK)
                n = os.readv(src, [buffer])
                view = memoryview(buffer)[:n]
                while view:
                    view = view[os.write(dst, view):]
            if n == 0:
                if mode != "read" and written < os.fstat(src).st_size:
                    # some file systems (FUSE, overlays, /proc) answer 0 to a kernel copy: copy by hand
                    mode = "sendfile" if mode == "copy_file_range" else "read"
                    continue
                break
            written += n
            hasher.advance(written)
            if writeback is not None:
                writeback(dst, written - n, n)
        failed = False
    finally:
        hasher.finish(failed=failed)
        hasher.join()
    if hasher.error is not None:
        raise hasher.error
    return written, hasher.digest.hexdigest()


__all__ = ["CHUNK", "copy_hashing"]
