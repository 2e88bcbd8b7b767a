"""A local build's code and environment, and the environment variables of a local task.

On the local runtime the task layout (:mod:`atoll.task.layout`) lives in a
host directory named by ``ATOLL_TASK_DIR``; ``app`` links to the build's
immutable code snapshot (or to the IDE's ``--edit`` directory).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from atoll.config import atoll_home
from atoll.containers.base import StagedTask, TaskSpec
from atoll.domain.records import BuildVersion
from atoll.errors import NotFoundError
from atoll.task.layout import STAGING_ENV, STORE_CONFIG_ENV, TASK_DIR_ENV
from atoll.task.staging import remove_tree

# Variables a task inherits from the caller's environment; everything else
# (notably ATOLL_* config overrides that may carry credentials) stays out.
_INHERITED_ENV = ("HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM", "SHELL")


def build_app_dir(build: BuildVersion) -> Path:
    """The immutable code snapshot of a local build."""
    if not build.location:
        raise NotFoundError(
            f"build {build.ref} has no local location (built by {build.container_manager!r}?)"
        )
    return Path(build.location) / "app"


def build_env_dir(build: BuildVersion) -> Path:
    """The virtual environment of a local build."""
    env = build.details.get("env_dir")
    if env:
        return Path(env)
    if not build.env_hash:
        raise NotFoundError(f"build {build.ref} has no local environment")
    return atoll_home() / "envs" / build.env_hash


def build_python(build: BuildVersion) -> Path:
    """The Python interpreter of a local build's environment.

    Raises:
        NotFoundError: the environment was removed (rebuild the project).
    """
    python = build_env_dir(build) / "bin" / "python"
    if not python.exists():
        raise NotFoundError(
            f"the environment of build {build.ref} is gone ({python}); rebuild with `atoll proj build`"
        )
    return python


def link_app(spec: TaskSpec, staged: StagedTask) -> Path:
    """Make ``app`` in the staged layout point at the build's code (or ``spec.edit_dir``).

    Raises:
        NotFoundError: the build's code snapshot is gone.
    """
    source = spec.edit_dir if spec.edit_dir is not None else build_app_dir(spec.build)
    if not source.is_dir():
        raise NotFoundError(f"the code of build {spec.build.ref} is missing ({source}); rebuild the project")
    app = staged.layout.app_dir
    remove_tree(app)
    app.symlink_to(source.resolve(), target_is_directory=True)
    return app


def link_mounts(spec: TaskSpec, staged: StagedTask) -> None:
    """``--mount`` on the local runtime: ``<task dir>/<DST>`` becomes a symbolic link to ``SRC``.

    There is no container to mount into, and the host's own ``DST`` is never touched
    (it usually cannot be made without root, and tasks would share it). A notebook
    finds the mount at ``atoll.toolkit.mount_path(DST)``: this link locally, ``DST``
    itself in a container. ``:ro`` cannot be enforced by a link: the files keep their
    own permissions.
    """
    for mount in spec.mounts:
        link = staged.root / mount.target.lstrip("/")
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.is_file():
            link.unlink()
        elif link.exists():
            remove_tree(link)
        link.symlink_to(mount.source)


def task_environment(
    build: BuildVersion, staged: StagedTask, extra_env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Environment variables of a local task.

    The build's environment comes first on PATH; the task finds its layout
    through ``ATOLL_TASK_DIR`` and its store settings through the *path* in
    ``ATOLL_STORE_CONFIG``. No credential is ever put in a value here.
    """
    env_dir = build_env_dir(build)
    task_dir = staged.root
    env = {key: os.environ[key] for key in _INHERITED_ENV if key in os.environ}
    env.update({key: value for key, value in os.environ.items() if key.startswith("LC_")})
    env.update(
        {
            "PATH": os.pathsep.join([str(env_dir / "bin"), os.environ.get("PATH", os.defpath)]),
            "VIRTUAL_ENV": str(env_dir),
            "PYTHONUNBUFFERED": "1",
            "PYTHONNOUSERSITE": "1",
            TASK_DIR_ENV: str(task_dir),
            STORE_CONFIG_ENV: str(staged.store_file),
            "ATOLL_HOME": str(atoll_home()),
            # Keep the user's own kernels and Jupyter settings out of the task.
            "JUPYTER_DATA_DIR": str(task_dir / "atoll" / "jupyter"),
        }
    )
    if staged.staging == "fetch":
        env[STAGING_ENV] = "fetch"
    env.update(extra_env or {})
    return env


__all__ = ["build_app_dir", "build_env_dir", "build_python", "link_app", "link_mounts", "task_environment"]
