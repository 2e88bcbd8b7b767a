"""How a staged task reaches a container: mounts, the store settings, the environment.

:meth:`ContainerManager.stage_task` writes the task layout on the host
(``$ATOLL_HOME/tasks/<proj>/<kind>/<name>[/g<generation>]``); this module
says how the container sees it (DESIGN.md §4)::

    <stage>/atoll/meta   -> /atoll/meta     records given to the task (read-only)
    <stage>/data         -> /data           staged datasets        } host staging
    <stage>/model        -> /model          staged model versions  } only
    <stage>/atoll/secret/store.json         store settings (0600): a file mount for
                                            containers, a Docker secret for services
    SRC of each --mount  -> DST             a bind mount (a host path) or a named volume

``/app`` is the image's own code. With ``fetch`` staging (``container_manager.staging``;
the default whenever the stores are not embedded) ``/data`` and ``/model``
are not mounted: the task fetches the files ``/atoll/meta`` names from the
file store itself, and a deployment's records reach its replicas as Docker
configs, so replicas run on any node of the swarm.

The embedded stores keep working from a container on the same host: the
directory of the SQLite database and the root of the local file store are
bind-mounted read-write at ``/atoll/store/db`` and ``/atoll/store/files`` and
the store settings are rewritten to those paths; ``secret.key`` (the
treasure-chest key) is masked by an empty file when it lives next to the
database. Other stores (PostgreSQL, S3...) are handed over unchanged and must
be reachable from the ``atoll`` overlay network.

Task containers never run as root by default (:func:`chosen_user`): as the
user Atoll runs as, or, when that is root, as the base image's user with
what the container must read or write handed over to it.
"""

from __future__ import annotations

import copy
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atoll.config import atoll_home
from atoll.containers.base import StagedTask, TaskSpec
from atoll.containers.spec import TASK_USER
from atoll.task.layout import DATA_DIR, META_DIR, MODEL_DIR, STAGING_ENV, STORE_CONFIG_ENV, TASK_DIR_ENV

if TYPE_CHECKING:
    from docker.types import Mount

CONTAINER_DB_DIR = "/atoll/store/db"
CONTAINER_FILES_DIR = "/atoll/store/files"
STORE_SECRET_PATH = "/run/secrets/atoll-store.json"
_SQLITE_PREFIX = "sqlite:///"
_KEY_FILE = "secret.key"

Bind = tuple[str, str, bool]  # (host path, container path, read-only)


def container_store_config(store_config: Mapping[str, Any], blank: Path) -> tuple[dict[str, Any], list[Bind]]:
    """The store settings as the container must see them, plus the bind mounts they need.

    ``blank`` is an empty host file laid over ``secret.key`` when it sits next to the database.
    """
    config = copy.deepcopy(dict(store_config))
    binds: list[Bind] = []
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


def blank_file() -> Path:
    """An empty read-only host file (``$ATOLL_HOME/run/blank``) to mask files in mounts."""
    path = atoll_home() / "run" / "blank"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
        os.chmod(path, stat.S_IRUSR)
    return path


def task_binds(spec: TaskSpec, staged: StagedTask, *, store_file: bool) -> list[Bind]:
    """The bind mounts of a staged task (``store_file``: the settings as a file mount, not a secret)."""
    layout = staged.layout
    binds: list[Bind] = [(str(layout.meta_dir), META_DIR, True)]
    if staged.staging == "host":
        binds += [(str(layout.data_dir), DATA_DIR, True), (str(layout.model_dir), MODEL_DIR, True)]
    binds += container_store_config(spec.store_config, blank_file())[1]
    if store_file:
        binds.append((str(staged.store_file), STORE_SECRET_PATH, True))
    if spec.edit_dir is not None:
        binds.append((str(spec.edit_dir.resolve()), "/app", False))
    return binds


def task_user(spec: TaskSpec, staged: StagedTask, binds: list[Bind]) -> tuple[int, int]:
    """The uid/gid a task container runs as (:func:`chosen_user`), handed what it must read or write.

    When Atoll runs as root, the task's staged directory and what the container writes
    (:func:`hand_over_stores`) are handed over (``chown``) to that user.
    """
    user = chosen_user(spec.edit_dir)
    if os.geteuid() == 0 and user[0] != 0:
        _hand_over(staged.root, user, recursive=True)
        hand_over_stores([b for b in binds if b[1] != "/app"], user, staged.store_config)
    return user


def chosen_user(edit_dir: Path | None) -> tuple[int, int]:
    """The uid/gid a task container runs as: never root, unless ``note --edit`` mounts a directory
    that root owns and ``--allow-root`` allowed it (:func:`~atoll.containers.spec.refuse_root_ide`).

    - Atoll runs as a user: that user (the staged files and the embedded stores are theirs);
    - Atoll runs as root: the base image's user (:data:`TASK_USER`);
    - ``note --edit``: the owner of the project directory Jupyter edits (``edit_dir``).
    """
    if edit_dir is not None:
        found = edit_dir.stat()
        return found.st_uid, found.st_gid
    return runtime_user()


def runtime_user() -> tuple[int, int]:
    """The uid/gid of a container of the base image: the user Atoll runs as, or :data:`TASK_USER`
    when that is root."""
    return (os.geteuid(), os.getegid()) if os.geteuid() != 0 else TASK_USER


def hand_over_stores(binds: list[Bind], user: tuple[int, int], store_config: Mapping[str, Any]) -> None:
    """Give ``user`` what a container writes through ``binds`` (Atoll runs as root): the SQLite
    database, its WAL files and its directory (not the rest of that directory), and the local file
    store's tree. SQLite gives the journal files root makes later the database's owner."""
    if os.geteuid() != 0:
        return
    for source, target, read_only in binds:
        if read_only:
            continue
        if target == CONTAINER_DB_DIR:
            _hand_over(Path(source), user, recursive=False)
            url = str((store_config.get("metadata") or {}).get("url") or "")
            database = Path(source) / url.rpartition("/")[2].partition("?")[0]
            for path in (database, *(database.with_name(database.name + s) for s in ("-wal", "-shm"))):
                _hand_over(path, user, recursive=False)
        else:
            _hand_over(Path(source), user, recursive=True)


def _hand_over(path: Path, user: tuple[int, int], recursive: bool) -> None:
    """``chown`` ``path`` (and what is under it) to ``user`` where it is not theirs yet; a missing path is skipped."""
    def own(item: str | Path) -> None:
        try:
            found = os.lstat(item)
            if (found.st_uid, found.st_gid) != user:
                os.lchown(item, *user)
        except FileNotFoundError:
            pass

    own(path)
    if recursive and path.is_dir() and not path.is_symlink():
        for top, dirs, files in os.walk(path):
            for name in (*dirs, *files):
                own(os.path.join(top, name))


def user_env(user: tuple[int, int]) -> dict[str, str]:
    """What a task container running as ``user`` needs in its environment: a writable ``HOME`` when it
    is not the image's user (no account of that uid in the image)."""
    return {} if user == TASK_USER else {"HOME": "/tmp"}


def mounts(binds: list[Bind]) -> list[Mount]:
    """``docker.types.Mount`` objects for bind mounts."""
    from docker.types import Mount

    return [Mount(target, source, type="bind", read_only=ro) for source, target, ro in binds]


def user_mounts(spec: TaskSpec) -> list[Mount]:
    """``--mount``: a bind mount of a host path, or a named volume (created by the engine when missing)."""
    from docker.types import Mount

    return [Mount(m.target, m.source, type="volume" if m.volume else "bind", read_only=m.read_only)
            for m in spec.mounts]


def task_env(spec: TaskSpec, staged: StagedTask, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a task's container: the task contract's variables on top of ``spec.env``."""
    env = dict(spec.env)
    env.update({TASK_DIR_ENV: "/", STORE_CONFIG_ENV: STORE_SECRET_PATH, "PYTHONUNBUFFERED": "1"})
    if staged.staging == "fetch":
        env[STAGING_ENV] = "fetch"
    env.update(extra or {})
    return env


__all__ = [
    "CONTAINER_DB_DIR",
    "CONTAINER_FILES_DIR",
    "STORE_SECRET_PATH",
    "blank_file",
    "container_store_config",
    "hand_over_stores",
    "mounts",
    "runtime_user",
    "task_binds",
    "task_env",
    "task_user",
    "user_env",
    "user_mounts",
]
