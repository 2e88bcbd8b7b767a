"""Stage a container task's files on the host and describe the mounts that deliver them.

A container sees the DESIGN.md §4 layout through read-only bind mounts of a
host directory (``$ATOLL_HOME/tasks/<proj>/<kind>/<name>[/<generation>]``)::

    <stage>/atoll/meta   -> /atoll/meta     records given to the task
    <stage>/data         -> /data           staged datasets
    <stage>/model        -> /model          staged model versions
    <stage>/secret/store.json               store settings (0600): a file mount
                                            for containers, a Docker secret for services

``/app`` is the image's own code. The embedded stores keep working from the
container on the same host: the directory of the SQLite database and the root
of the local file store are bind-mounted read-write at ``/atoll/store/db`` and
``/atoll/store/files`` and the store settings are rewritten to those paths;
``secret.key`` (the treasure-chest key) is masked by an empty file when it
lives next to the database. Other stores (PostgreSQL, S3...) are handed over
unchanged and must be reachable from the ``atoll`` overlay network.
"""

from __future__ import annotations

import copy
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from atoll.containers.base import TaskSpec
from atoll.containers.staging import remove_tree, stage_artifact
from atoll.domain.records import Record

if TYPE_CHECKING:
    from docker.types import Mount

    from atoll.files.base import FileStore

CONTAINER_DB_DIR = "/atoll/store/db"
CONTAINER_FILES_DIR = "/atoll/store/files"
STORE_SECRET_PATH = "/run/secrets/atoll-store.json"
_SQLITE_PREFIX = "sqlite:///"
_KEY_FILE = "secret.key"


@dataclass
class StagedTask:
    """A staged host directory and what a container needs to see it."""

    root: Path
    store_config: dict[str, Any]  # rewritten for the container
    binds: list[tuple[str, str, bool]] = field(default_factory=list)  # (host, container, read_only)

    @property
    def store_file(self) -> Path:
        return self.root / "secret" / "store.json"

    def mounts(self) -> list[Mount]:
        from docker.types import Mount

        return [Mount(target, source, type="bind", read_only=ro) for source, target, ro in self.binds]


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    os.replace(tmp, path)


def container_store_config(store_config: Mapping[str, Any], blank: Path) -> tuple[dict[str, Any], list[tuple[str, str, bool]]]:
    """The store settings as the container must see them, plus the bind mounts they need.

    ``blank`` is an empty host file laid over ``secret.key`` when it sits next to the database.
    """
    config = copy.deepcopy(dict(store_config))
    binds: list[tuple[str, str, bool]] = []
    url = str((config.get("metadata") or {}).get("url") or "")
    if url.startswith(_SQLITE_PREFIX) and url != "sqlite:///:memory:":
        db = Path(url[len(_SQLITE_PREFIX):].split("?", 1)[0])
        query = url.partition("?")[2]
        db_dir = db.parent.resolve()
        db_dir.mkdir(parents=True, exist_ok=True)
        binds.append((str(db_dir), CONTAINER_DB_DIR, False))
        if (db_dir / _KEY_FILE).exists():
            binds.append((str(blank), f"{CONTAINER_DB_DIR}/{_KEY_FILE}", True))
        config["metadata"]["url"] = f"{_SQLITE_PREFIX}{CONTAINER_DB_DIR}/{db.name}" + (f"?{query}" if query else "")
    file_store = config.get("file_store") or {}
    options = file_store.get("options") or {}
    if file_store.get("type") == "local" and options.get("root"):
        root = Path(options["root"]).resolve()
        root.mkdir(parents=True, exist_ok=True)
        if binds and root == Path(binds[0][0]):
            options["root"] = CONTAINER_DB_DIR
        else:
            binds.append((str(root), CONTAINER_FILES_DIR, False))
            options["root"] = CONTAINER_FILES_DIR
    return config, binds


def stage_container_task(spec: TaskSpec, root: Path, files: FileStore) -> StagedTask:
    """Write the §4 layout (without ``app``) for ``spec`` under ``root``; return the mounts.

    Raises:
        NotFoundError / ValidationError: a staged artifact's stored files are missing or corrupt.
    """
    remove_tree(root)
    root.mkdir(parents=True)
    meta = root / "atoll" / "meta"
    _write_json(meta / "project.json", spec.project.public_dump())
    _write_json(meta / "build.json", spec.build.public_dump())
    for key, value in spec.meta.items():
        _write_json(meta / f"{key}.json", value.public_dump() if isinstance(value, Record) else dict(value))
    (root / "data").mkdir()
    (root / "model").mkdir()
    for artifact in [*spec.datasets, *spec.versions]:
        stage_artifact(files, artifact, root)
    secret = root / "secret"
    secret.mkdir(mode=stat.S_IRWXU)
    blank = secret / "blank"
    blank.write_bytes(b"")
    os.chmod(blank, stat.S_IRUSR)
    store_config, store_binds = container_store_config(spec.store_config, blank)
    fd = os.open(secret / "store.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(orjson.dumps(store_config))
    binds = [
        (str(meta), "/atoll/meta", True),
        (str(root / "data"), "/data", True),
        (str(root / "model"), "/model", True),
        *store_binds,
    ]
    if spec.edit_dir is not None:
        binds.append((str(spec.edit_dir.resolve()), "/app", False))
    return StagedTask(root, store_config, binds)


__all__ = [
    "CONTAINER_DB_DIR",
    "CONTAINER_FILES_DIR",
    "STORE_SECRET_PATH",
    "StagedTask",
    "container_store_config",
    "stage_container_task",
]
