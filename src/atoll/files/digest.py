"""The digests stored files are recorded with: BLAKE3 by default, sha256 still read.

Every stored file is recorded with its size and one digest (see
:class:`~atoll.domain.records.StoredFile`): ``blake3`` for files published
with ``file_store.digest: blake3`` (the default), ``sha256`` for files
recorded before BLAKE3 was the default, or with ``file_store.digest: sha256``.
A fetch verifies each file with the algorithm of its record.

Why BLAKE3: a verified fetch hashes every byte it copies, so the hash bounds
the fetch. On one core BLAKE3 runs at 2.7–3.6 GB/s here, faster than ``cp``
(about 1.8 GB/s); sha256 runs at 1.1–1.7 GB/s, slower than the copy it
verifies. Both release the GIL while they hash a large buffer, so a hashing
thread runs beside the copying one.

``threads``: BLAKE3 can hash one buffer on several cores (``AUTO``: as many
as it finds). The copy path keeps it on one thread (the copy needs its own
core); hashing a whole file that nothing else is reading uses ``AUTO``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from atoll.errors import UsageError

BLAKE3 = "blake3"
SHA256 = "sha256"
ALGORITHMS = (BLAKE3, SHA256)
DEFAULT = BLAKE3
AUTO = -1  # blake3's max_threads=AUTO: every core it finds
_CHUNK = 1 << 20


def check_algorithm(algorithm: str) -> str:
    """``algorithm`` when Atoll records files with it.

    Raises:
        UsageError: not one of :data:`ALGORITHMS`.
    """
    if algorithm not in ALGORITHMS:
        raise UsageError(f"unknown file digest {algorithm!r}: use {' or '.join(ALGORITHMS)}")
    return algorithm


def new_hash(algorithm: str, *, threads: int = 1) -> Any:
    """A fresh hash object (``update``/``hexdigest``) of ``algorithm``.

    Raises:
        UsageError: an unknown algorithm, or ``blake3`` while the package is
            not installed (an image built from an older Atoll).
    """
    if check_algorithm(algorithm) == SHA256:
        return hashlib.sha256()
    try:
        import blake3
    except ImportError as exc:  # pragma: no cover - blake3 is a dependency of the package
        raise UsageError("files recorded with BLAKE3 need the blake3 package: pip install blake3") from exc
    return blake3.blake3(max_threads=blake3.blake3.AUTO if threads == AUTO else threads)


def _read_digest(path: Path, algorithm: str) -> str:
    """The hex digest of the file read in 1 MiB chunks (one reusable buffer, the GIL released while hashing)."""
    with open(path, "rb") as handle:
        if algorithm == SHA256 and hasattr(hashlib, "file_digest"):  # 3.11+
            return hashlib.file_digest(handle, "sha256").hexdigest()
        digest = new_hash(algorithm)
        buffer = bytearray(_CHUNK)
        view = memoryview(buffer)
        while n := handle.readinto(view):
            digest.update(view[:n])
    return str(digest.hexdigest())


def digest_file(path: Path, algorithm: str, *, threads: int = AUTO) -> str:
    """The hex digest of the file at ``path``; BLAKE3 maps it and hashes it on ``threads`` cores.

    Raises:
        OSError: the file cannot be read.
    """
    if algorithm == BLAKE3:
        digest = new_hash(algorithm, threads=threads)
        try:
            digest.update_mmap(str(path))
            return str(digest.hexdigest())
        except (OSError, ValueError):  # a file system without mmap: read it instead
            pass
    return _read_digest(path, algorithm)


__all__ = ["ALGORITHMS", "AUTO", "BLAKE3", "DEFAULT", "SHA256", "check_algorithm", "digest_file", "new_hash"]
