"""Local builds: an immutable code snapshot plus a cached virtual environment.

Layout under ``$ATOLL_HOME``::

    builds/<project>/<code_hash[:16]>/app/     the project's files, as built
    envs/<env_hash>/                           venv: requirements + on-board deps

The environment is keyed by the hash of ``requirements.txt`` (plus what the
project's ``Dockerfile`` pip-installs besides, :mod:`atoll.containers.dockerfile`),
Atoll's version and the Python version, so rebuilding with unchanged
requirements reuses it (seconds); ``--no-cache`` recreates it. Environments are created in a
temporary directory and renamed into place, so a failed or interrupted build
never leaves a half environment under the final name. The venv sees the very
``atoll`` package that built it through a ``.pth`` entry, and Noronha's
toolkit paths as the package ``noronha`` (:mod:`atoll.compat.noronha`).
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from pathlib import Path

import orjson
from filelock import FileLock, Timeout

import atoll
from atoll.config import atoll_home
from atoll.containers.base import BuildRequest, LogSink
from atoll.containers.dockerfile import LocalInstalls, local_installs
from atoll.containers.sources import code_hash, project_files
from atoll.domain.records import BuildVersion
from atoll.errors import BackendError, ExecutionError
from atoll.runner import KERNEL_NAME
from atoll.task.staging import remove_tree

# What the runner, the toolkit and the serving code need inside every task.
ONBOARD_REQUIREMENTS = (
    "alembic",
    "blake3",  # stored files are verified with their recorded BLAKE3
    "cryptography",
    "filelock",
    "httptools",
    "ipykernel",
    "nbclient",
    "orjson",
    "papermill",
    "psycopg[binary]",
    "pydantic",
    "pyyaml",
    "sqlalchemy",
    "uvicorn",
    "uvloop",
)

ENV_MARKER = "atoll-env.json"

# The installer step (uv/pip) of a build may not hang a build forever (a dead
# package index, a lock held by a stuck process): it gets this many seconds.
INSTALL_TIMEOUT = float(os.environ.get("ATOLL_INSTALL_TIMEOUT", "900"))
ENV_LOCK_TIMEOUT = 1800.0


def env_hash(requirements: bytes) -> str:
    """Key of the environment: requirements, Atoll's version and the Python running Atoll."""
    digest = hashlib.sha256()
    for part in (
        requirements,
        atoll.__version__.encode(),
        platform.python_version().encode(),
        sys.base_prefix.encode(),
        "\n".join(ONBOARD_REQUIREMENTS).encode(),
    ):
        digest.update(part + b"\0")
    return digest.hexdigest()[:24]


def _snapshot(source: Path, target: Path) -> None:
    """Copy the project files to ``target/app`` (via a temporary sibling)."""
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
    app = tmp / "app"
    try:
        for rel in project_files(source):
            dest = app / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / rel, dest, follow_symlinks=False)
        app.mkdir(parents=True, exist_ok=True)
        if target.exists():  # another build of the same code won the race
            remove_tree(tmp)
            return
        tmp.rename(target)
    except BaseException:
        remove_tree(tmp)
        raise


def _run(
    argv: list[str], log: LogSink, what: str, env: dict[str, str] | None = None, timeout: float | None = None
) -> None:
    """Run a build step, streaming its output to ``log``; fail with its last lines.

    With ``timeout``, the step is killed when it runs longer, and the error
    names what it was doing last (its last line: the package it was fetching...).
    """
    tail: deque[str] = deque(maxlen=20)
    try:
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
        )
    except OSError as exc:
        raise BackendError(f"{what}: cannot run {argv[0]}: {exc}") from exc
    expired = threading.Event()

    def stop() -> None:
        expired.set()
        proc.kill()

    timer = threading.Timer(timeout, stop) if timeout else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        for line in proc.stdout or ():
            line = line.rstrip("\n")
            tail.append(line)
            log(line)
        code = proc.wait()
    finally:
        if timer is not None:
            timer.cancel()
    last = "\n".join(tail)
    if expired.is_set() and code != 0:
        doing = tail[-1] if tail else "no output yet (resolving or downloading packages?)"
        raise ExecutionError(
            f"{what} did not finish within {timeout:g}s and was stopped; its last line: {doing}", log_tail=last
        )
    if code != 0:
        raise ExecutionError(f"{what} failed (exit code {code}):\n{last}", log_tail=last)


def _find_uv() -> str | None:
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


def _site_packages(env_dir: Path) -> Path:
    found = sorted(env_dir.glob("lib/python*/site-packages"))
    if not found:
        raise ExecutionError(f"the new environment {env_dir} has no site-packages directory")
    return found[0]


def _create_env(tmp: Path, requirements: list[Path], packages: list[str], log: LogSink) -> str:
    """Create the venv in ``tmp`` with the project's (files and packages) and the on-board requirements."""
    uv = _find_uv()
    req_args = [arg for path in requirements for arg in ("-r", str(path))] + packages
    python = sys.executable
    named = ", ".join([p.name for p in requirements] + packages)
    log(
        f"installing {named + ' and ' if named else ''}Atoll's on-board packages "
        f"with {'uv' if uv else 'pip'} (at most {INSTALL_TIMEOUT:g}s)"
    )
    if uv:
        env = dict(os.environ, UV_NO_PROGRESS="1")
        _run([uv, "venv", "--quiet", "--relocatable", "--python", python, str(tmp)], log, "uv venv", env)
        _run(
            [
                uv,
                "pip",
                "install",
                "--compile-bytecode",
                "--python",
                str(tmp / "bin" / "python"),
                *req_args,
                *ONBOARD_REQUIREMENTS,
            ],
            log,
            "installing the requirements (uv pip install)",
            env,
            timeout=INSTALL_TIMEOUT,
        )
        return "uv"
    _run([python, "-m", "venv", str(tmp)], log, "python -m venv")
    pip = [str(tmp / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check"]
    _run([*pip, *req_args, *ONBOARD_REQUIREMENTS], log, "installing the requirements (pip install)",
         timeout=INSTALL_TIMEOUT)
    return "pip"


def _link_atoll(env_dir: Path) -> None:
    """Let the venv import the running ``atoll`` package (and ``noronha``, its compatibility package).

    A symlink to the package sits in ``<env>/atoll-src``; a relative ``.pth``
    entry adds that directory, so the venv survives being renamed into place.
    """
    src = env_dir / "atoll-src"
    src.mkdir(exist_ok=True)
    link = src / "atoll"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(Path(atoll.__file__).resolve().parent, target_is_directory=True)
    _link_noronha(env_dir)
    site = _site_packages(env_dir)
    (site / "_atoll_onboard.pth").write_text(os.path.relpath(src, site) + "\n")


def _link_noronha(env_dir: Path) -> None:
    """``<env>/atoll-src/noronha`` -> :mod:`atoll.compat.noronha` (added to environments made before it too)."""
    link = env_dir / "atoll-src" / "noronha"
    if not link.is_symlink():
        link.symlink_to(Path("atoll", "compat", "noronha"), target_is_directory=True)


def _write_kernelspec(env_dir: Path) -> None:
    """A kernelspec inside the venv; ``python`` is resolved to the runner's interpreter."""
    spec_dir = env_dir / "share" / "jupyter" / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python (Atoll build)",
        "language": "python",
        "metadata": {"debugger": True},
    }
    (spec_dir / "kernel.json").write_bytes(orjson.dumps(spec, option=orjson.OPT_INDENT_2))


def _dockerfile_installs(source_dir: Path, log: LogSink) -> LocalInstalls:
    """What the project's Dockerfile pip-installs besides ``requirements.txt``; what else it does is logged."""
    dockerfile = source_dir / "Dockerfile"
    if not dockerfile.is_file():
        return LocalInstalls()
    found = local_installs(dockerfile.read_text(errors="replace"), source_dir)
    found.requirement_files = [f for f in found.requirement_files if f != "requirements.txt"]
    for line in found.not_done:
        log(f"Dockerfile {line}: not run by the local runtime (it installs only the RUN lines' pip packages)")
    return found


def ensure_env(source_dir: Path, no_cache: bool, log: LogSink) -> tuple[str, Path, bool]:
    """Return ``(env_hash, env_dir, reused)``, creating the environment when needed.

    Raises:
        ExecutionError: the requirements could not be installed (with pip's last lines).
    """
    req_path = source_dir / "requirements.txt"
    requirements = req_path.read_bytes() if req_path.is_file() else b""
    extra = _dockerfile_installs(source_dir, log)
    req_files = [req_path] if requirements else []
    if extra.requirement_files or extra.packages:  # only then: unchanged keys for projects without them
        req_files += [source_dir / rel for rel in extra.requirement_files]
        requirements += b"\0Dockerfile\0" + b"\0".join(
            [(source_dir / rel).read_bytes() for rel in extra.requirement_files] + [p.encode() for p in extra.packages]
        )
    key = env_hash(requirements)
    envs = atoll_home() / "envs"
    envs.mkdir(parents=True, exist_ok=True)
    final = envs / key
    lock = FileLock(str(envs / f".{key}.lock"), timeout=ENV_LOCK_TIMEOUT)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log(f"waiting for another build creating environment {key} (at most {ENV_LOCK_TIMEOUT:g}s)")
        try:
            lock.acquire()
        except Timeout as exc:
            raise BackendError(f"another build holds the environment lock {key} for too long") from exc
    try:
        if (final / ENV_MARKER).is_file() and not no_cache:
            _link_noronha(final)
            log(f"reusing environment {final} (requirements unchanged)")
            return key, final, True
        tmp = envs / f".{key}.{uuid.uuid4().hex[:8]}.partial"
        started = time.monotonic()
        log(f"creating environment {final}")
        try:
            installer = _create_env(tmp, req_files, extra.packages, log)
            _link_atoll(tmp)
            _write_kernelspec(tmp)
            marker = {
                "env_hash": key,
                "installer": installer,
                "python": platform.python_version(),
                "atoll": atoll.__version__,
                "seconds": round(time.monotonic() - started, 2),
            }
            (tmp / ENV_MARKER).write_bytes(orjson.dumps(marker))
            if final.exists():
                old = envs / f".{key}.{uuid.uuid4().hex[:8]}.old"
                final.rename(old)
                remove_tree(old)
            tmp.rename(final)
        except BaseException:
            remove_tree(tmp)
            raise
        log(f"environment ready in {time.monotonic() - started:.1f}s")
        return key, final, False
    finally:
        lock.release()


def build_local(request: BuildRequest, log: LogSink) -> BuildVersion:
    """Snapshot the code and prepare the environment; return the unsaved record."""
    project = request.project
    location = atoll_home() / "builds" / project.name / request.code_hash[:16]
    if (location / "app").is_dir():
        log(f"code unchanged: reusing snapshot {location}")
    else:
        location.parent.mkdir(parents=True, exist_ok=True)
        _snapshot(request.source_dir, location)
        log(f"code snapshot written to {location}")
    key, env_dir, reused = ensure_env(request.source_dir, request.no_cache, log)
    return BuildVersion(
        name=request.tag,
        proj=project.name,
        container_manager="local",
        built_from=request.built_from,
        code_hash=request.code_hash,
        git_commit=request.git_commit,
        location=str(location),
        env_hash=key,
        details={"env_dir": str(env_dir), "env_reused": reused, "python": platform.python_version()},
    )


__all__ = [
    "ENV_MARKER",
    "KERNEL_NAME",
    "ONBOARD_REQUIREMENTS",
    "build_local",
    "code_hash",
    "ensure_env",
    "env_hash",
    "project_files",
]
