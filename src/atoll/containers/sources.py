"""A project's source files as a build sees them, and the hash that names the code.

Every manager builds from the same file set (:func:`project_files`) and the
API records :func:`code_hash` with each build version, so a rebuild of
unchanged code is recognised whatever the manager.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

# Never part of a build: VCS data, environments, caches, notebook checkpoints.
SKIPPED_NAMES = frozenset({".git", ".hg", ".svn", ".venv", "venv", "__pycache__", ".ipynb_checkpoints"})
SKIPPED_SUFFIXES = (".pyc", ".pyo")


def project_files(root: Path) -> list[Path]:
    """The project's files below ``root`` (relative, sorted), without VCS data and caches."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_NAMES)
        for name in filenames:
            if name in SKIPPED_NAMES or name.endswith(SKIPPED_SUFFIXES):
                continue
            found.append(Path(dirpath, name).relative_to(root))
    return sorted(found, key=lambda p: p.as_posix())


def code_hash(root: Path) -> str:
    """sha256 over the sorted relative paths and contents of the project's files."""
    digest = hashlib.sha256()
    for rel in project_files(root):
        path = root / rel
        digest.update(rel.as_posix().encode() + b"\0")
        if path.is_symlink():
            digest.update(b"L" + os.readlink(path).encode())
        else:
            digest.update(b"F" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


__all__ = ["SKIPPED_NAMES", "SKIPPED_SUFFIXES", "code_hash", "project_files"]
