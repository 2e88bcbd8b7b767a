"""Reading and writing the JSON records of a task (``atoll/meta/*.json``).

The off-board side (container managers) writes them when staging; the
on-board side (runner, toolkit) reads them. The training / deployment record
says what to run (``notebook``, ``params``).

Standard library and orjson only.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import orjson

from atoll.errors import NotFoundError, UsageError


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    os.replace(tmp, path)


def write_private_json(path: Path, data: Any, group: int | None = None) -> None:
    """Write ``data`` as JSON with :func:`write_private_bytes`."""
    write_private_bytes(path, orjson.dumps(data), group)


def write_private_bytes(path: Path, data: bytes, group: int | None = None, durable: bool = False) -> None:
    """Write ``data`` readable by the owner only (0600; its directory 0700), atomically.

    With ``group``, that group may read too (0640 in a 0750 directory owned by it): a container
    running as that group reads the file through a bind mount, nobody else on the host does.
    ``durable`` syncs the file to disk before it replaces the old one.

    Raises:
        OSError: it cannot be written (the old file, if any, is left as it was).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    share_private_dir(path.parent, group)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            if group is not None:  # before the rename: the reader never sees the file unreadable
                share_private_file(fd, group)
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(fd)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def share_private_dir(directory: Path, group: int | None) -> None:
    """``directory`` for its owner only (0700), or with ``group`` reading too (0750, owned by it)."""
    if group is None:
        os.chmod(directory, stat.S_IRWXU)
        return
    os.chown(directory, -1, group)
    os.chmod(directory, 0o750)


def share_private_file(file: Path | int, group: int) -> None:
    """A private file (a path or an open descriptor) readable by ``group`` too: 0640, owned by it."""
    os.chown(file, -1, group)
    os.chmod(file, 0o640)


def read_json(path: Path, what: str) -> dict[str, Any]:
    """The JSON object in ``path``.

    Raises:
        NotFoundError: the file is missing (``what`` names the record).
        UsageError: it is not a JSON object.
    """
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError as exc:
        raise NotFoundError(f"no {what} record in this task (expected {path})") from exc
    except orjson.JSONDecodeError as exc:
        raise UsageError(f"the {what} record {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise UsageError(f"the {what} record {path} is not a JSON object")
    return data


def list_entries(directory: Path, suffix: str = "") -> list[tuple[str, str]]:
    """(model, name) pairs found in ``directory`` as ``<model>.<name><suffix>`` entries, sorted."""
    try:
        entries = os.listdir(directory)
    except FileNotFoundError:
        return []
    pairs = []
    for entry in entries:
        if suffix:
            if not entry.endswith(suffix):
                continue
            entry = entry[: -len(suffix)]
        model, dot, name = entry.partition(".")
        if dot and model and name and "." not in name:
            pairs.append((model, name))
    return sorted(pairs)


__all__ = [
    "list_entries",
    "read_json",
    "write_json",
    "write_private_json",
]
