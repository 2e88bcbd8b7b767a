"""The Atoll base image: ``atoll/base:<atoll version>`` (DESIGN.md §5).

Built from ``docker.python_image`` with ``resources/docker/base.Dockerfile``
and a wheel of *this* Atoll, so the on-board side of a container (runner,
toolkit, store clients) is the code that started it. The wheel is packed
from the installed package and its metadata (no network, no source tree
needed, works the same from a checkout or a pip install).

The image carries the hash of that code in a label; an image whose hash
differs from the running Atoll (a checkout that moved on, same version
number) is rebuilt on demand, so a task never runs stale on-board code.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import shutil
import tempfile
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import atoll
from atoll.config import Config
from atoll.containers.base import LogSink
from atoll.containers.swarm.engine import LABEL_SOURCE_HASH, engine_errors
from atoll.errors import AtollError, BackendError, BackendUnavailableError, ExecutionError, NotFoundError

if TYPE_CHECKING:
    from docker import DockerClient

BASE_REPOSITORY = "atoll/base"
BASE_EXTRAS = ("ide", "mongo", "s3")  # base.Dockerfile's ATOLL_EXTRAS
BASE_DOCKERFILE = Path(atoll.__file__).parent / "resources" / "docker" / "base.Dockerfile"
_SKIP_DIRS = {"__pycache__", ".mypy_cache", ".pytest_cache"}
_SKIP_SUFFIXES = {".pyc", ".pyo"}
_COMPAT_NORONHA = "atoll/compat/noronha/"  # Noronha's toolkit paths (atoll.compat.noronha)


def base_image_ref(config: Config) -> str:
    """``atoll/base:<version>``, whatever ``docker.target_registry`` says.

    The base image lives on the engine that builds project images (they start
    ``FROM`` it, and the router island runs it by id); it is never pushed, so a
    target registry must not make it a second image to build from scratch.
    """
    return f"{BASE_REPOSITORY}:{atoll.__version__}"


def _package_files() -> list[tuple[str, Path]]:
    """``(archive name, path)`` of every file of the installed ``atoll`` package, sorted."""
    root = Path(atoll.__file__).parent
    out = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if not path.is_file() or _SKIP_DIRS.intersection(rel.parts) or path.suffix in _SKIP_SUFFIXES:
            continue
        out.append((f"atoll/{rel.as_posix()}", path))
    return out


def _dist_text(name: str) -> str | None:
    try:
        return importlib.metadata.distribution("atoll").read_text(name)
    except importlib.metadata.PackageNotFoundError:
        return None


@lru_cache(maxsize=1)
def source_hash() -> str:
    """sha256 over the package's files and metadata: what the base image must contain."""
    digest = hashlib.sha256()
    for name, path in _package_files():
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update((_dist_text("METADATA") or "").encode())
    return digest.hexdigest()


def build_wheel(dest: Path) -> Path:
    """Pack the installed Atoll into ``dest/atoll-<version>-py3-none-any.whl``.

    The wheel also holds :mod:`atoll.compat.noronha` as the top-level package
    ``noronha``: in the base image, notebooks written for Noronha import it.

    Raises:
        NotFoundError: Atoll's distribution metadata is missing (not installed).
    """
    metadata = _dist_text("METADATA")
    if metadata is None:
        raise NotFoundError("cannot build the base image: Atoll is not installed as a distribution (pip install -e .)")
    version = atoll.__version__
    info = f"atoll-{version}.dist-info"
    wheel_text = "Wheel-Version: 1.0\nGenerator: atoll\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    extra: dict[str, str] = {f"{info}/METADATA": metadata, f"{info}/WHEEL": wheel_text}
    entry_points = _dist_text("entry_points.txt")
    if entry_points:
        extra[f"{info}/entry_points.txt"] = entry_points
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / f"atoll-{version}-py3-none-any.whl"
    record: list[str] = []

    def add(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
        archive.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data)
        sha = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={sha},{len(data)}")

    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, path in _package_files():
            add(archive, name, path.read_bytes())
            if name.startswith(_COMPAT_NORONHA):  # also installed as the top-level package `noronha`
                add(archive, "noronha/" + name[len(_COMPAT_NORONHA):], path.read_bytes())
        for name, text in extra.items():
            add(archive, name, text.encode())
        record.append(f"{info}/RECORD,,")
        archive.writestr(zipfile.ZipInfo(f"{info}/RECORD", date_time=(2020, 1, 1, 0, 0, 0)), "\n".join(record) + "\n")
    return target


def requirements_text(extras: tuple[str, ...] = BASE_EXTRAS) -> str:
    """Atoll's ``Requires-Dist`` lines as a pip requirements file, ``extras`` resolved.

    The base image installs these in a layer of their own, which the build
    cache keeps while only Atoll's code changes.
    """
    metadata = _dist_text("METADATA") or ""
    lines = []
    for line in metadata.splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        requirement, _, marker = line[len("Requires-Dist:"):].strip().partition(";")
        marker = marker.strip()
        if "extra ==" in marker:
            extra = marker.split("extra ==", 1)[1].strip().strip("'\"")
            if extra not in extras:
                continue
            marker = ""
        lines.append(f"{requirement.strip()}; {marker}" if marker else requirement.strip())
    return "\n".join(sorted(set(lines))) + "\n"


def base_image_current(client: DockerClient, config: Config) -> bool:
    """True when the base image exists and holds this Atoll's code."""
    from docker.errors import ImageNotFound

    with engine_errors(config, "looking up the base image"):
        try:
            image = client.images.get(base_image_ref(config))
        except ImageNotFound:
            return False
    labels = (image.attrs.get("Config") or {}).get("Labels") or {}
    return labels.get(LABEL_SOURCE_HASH) == source_hash()


def ensure_base_image(client: DockerClient, config: Config, log: LogSink) -> str:
    """The base image reference, built first when missing or stale."""
    if not base_image_current(client, config):
        log(f"the base image {base_image_ref(config)} is missing or stale; building it")
        build_base_image(client, config, log)
    return base_image_ref(config)


def build_base_image(
    client: DockerClient,
    config: Config,
    log: LogSink,
    python_image: str | None = None,
    no_cache: bool = False,
) -> str:
    """Build ``atoll/base:<version>`` and return its image id.

    Raises:
        NotFoundError: the Python image is missing (pull it, or make it with
            ``scripts/offline-python-image``).
        ExecutionError: the build failed (with the builder's last lines).
        BackendUnavailableError: the daemon is down.
    """
    python_image = python_image or config.docker.python_image
    ref = base_image_ref(config)
    ensure_python_image(client, config, log, python_image)
    previous = image_id(client, config, ref)
    with tempfile.TemporaryDirectory(prefix="atoll-base-") as tmp:
        context = Path(tmp)
        build_wheel(context / "dist")
        (context / "deps").mkdir()
        (context / "deps" / "requirements.txt").write_text(requirements_text())
        shutil.copy(BASE_DOCKERFILE, context / "Dockerfile")
        built = run_build(
            client,
            config,
            log,
            path=str(context),
            tag=ref,
            dockerfile="Dockerfile",
            nocache=no_cache,
            buildargs={"PYTHON_IMAGE": python_image, "ATOLL_EXTRAS": ",".join(BASE_EXTRAS)},
            labels={LABEL_SOURCE_HASH: source_hash()},
            what="the base image",
        )
    if previous is not None and previous != built:
        remove_image(client, config, previous)  # untagged now; kept while project images build on it
    return built


def image_id(client: DockerClient, config: Config, ref: str) -> str | None:
    """The id of a local image, or None when the engine has no such image."""
    from docker.errors import ImageNotFound

    with engine_errors(config, f"looking up {ref}"):
        try:
            return str(client.images.get(ref).id)
        except ImageNotFound:
            return None


def ensure_python_image(client: DockerClient, config: Config, log: LogSink, python_image: str | None = None) -> str:
    """``docker.python_image`` (what every Atoll image starts from), pulled when missing.

    Raises:
        NotFoundError / BackendUnavailableError / BackendError: it is missing and
            cannot be pulled (see :func:`pull_image`; the message names
            ``scripts/offline-python-image`` for machines without a registry).
    """
    python_image = python_image or config.docker.python_image
    if image_id(client, config, python_image) is None:
        log(f"pulling {python_image}")
        try:
            pull_image(client, config, python_image)
        except (NotFoundError, BackendError) as exc:  # same kind of error, with the way out
            raise type(exc)(f"the Python image {python_image} is missing and cannot be pulled ({exc}); "
                            "where no registry is reachable, make it with scripts/offline-python-image") from exc
    return python_image


def pull_image(client: DockerClient, config: Config, ref: str, auth: dict[str, str] | None = None) -> Any:
    """Pull ``repo[:tag|@digest]`` and return the image, telling apart why a pull failed.

    Raises:
        NotFoundError: the registry has no such repository, tag or digest.
        BackendError: the registry refused the credentials (or asked for some).
        BackendUnavailableError: the registry (or the engine) cannot be reached.
    """
    from docker.errors import APIError

    repo, tag = split_ref(ref)
    doing = f"pulling {ref}"
    with engine_errors(config, doing):
        try:
            return client.images.pull(repo, tag=tag, auth_config=auth)
        except APIError as exc:
            raise pull_error(exc, ref) from exc


def split_ref(ref: str) -> tuple[str, str | None]:
    """``repo:tag`` / ``repo@digest`` / ``repo`` → ``(repo, tag-or-digest)`` (a registry's port is no tag)."""
    if "@" in ref:
        repo, _, digest = ref.partition("@")
        return repo, digest
    repo, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        return ref, None
    return repo, tag


_AUTH_WORDS = ("unauthorized", "authentication required", "no basic auth credentials", "denied: requested access")
_UNREACHABLE_WORDS = ("connection refused", "no such host", "i/o timeout", "timeout", "network is unreachable",
                      "tls handshake", "server gave http response", "connection reset", "eof")


def pull_error(exc: Any, ref: str) -> AtollError:
    """The Atoll error for the engine's answer to a failed pull (its text is all the engine gives)."""
    text = str(getattr(exc, "explanation", None) or exc).strip()
    lowered = text.lower()
    status = getattr(exc, "status_code", None) or 0
    if status in (401, 403) or any(word in lowered for word in _AUTH_WORDS):
        return BackendError(f"the registry refused to give {ref} (check docker.registry_secret): {text}")
    if status == 404 or "not found" in lowered or "manifest unknown" in lowered or "does not exist" in lowered:
        return NotFoundError(f"{ref} was not found in its registry: {text}")
    if any(word in lowered for word in _UNREACHABLE_WORDS):
        return BackendUnavailableError(f"the registry of {ref} cannot be reached: {text}")
    return BackendError(f"pulling {ref} failed: {text}")


def run_build(client: DockerClient, config: Config, log: LogSink, *, what: str, **kwargs: object) -> str:
    """Run a classic-builder build, streaming its output to ``log``; return the image id.

    Builds use the host network so pip reaches its index (DESIGN.md §6).

    Raises:
        ExecutionError: the build failed (message + the last lines of output).
    """
    tail: list[str] = []
    image_id: str | None = None
    error: str | None = None
    with engine_errors(config, f"building {what}"):
        stream = client.api.build(rm=True, forcerm=True, network_mode="host", decode=True, **kwargs)
        for item in stream:
            if "stream" in item:
                for line in str(item["stream"]).splitlines():
                    if line.strip():
                        tail.append(line)
                        log(line)
            if "aux" in item and isinstance(item["aux"], dict) and "ID" in item["aux"]:
                image_id = str(item["aux"]["ID"])
            if "error" in item:
                error = str(item.get("error") or "").strip()
                tail.append(error)
                log(error)
            del tail[:-30]
    if error is not None or image_id is None:
        raise ExecutionError(
            f"building {what} failed: {error or 'the builder reported no image'}", log_tail="\n".join(tail[-20:])
        )
    return image_id


def remove_image(client: DockerClient, config: Config, ref: str) -> None:
    """Remove an image by reference; missing, or still used by a container or child image, is fine."""
    from docker.errors import APIError, ImageNotFound

    with engine_errors(config, f"removing image {ref}"):
        try:
            client.images.remove(ref, noprune=False)
        except ImageNotFound:
            return
        except APIError as exc:
            if exc.status_code == 409:  # used by a container: keep it
                return
            raise


__all__ = [
    "BASE_REPOSITORY",
    "base_image_current",
    "base_image_ref",
    "build_base_image",
    "build_wheel",
    "ensure_base_image",
    "ensure_python_image",
    "image_id",
    "pull_error",
    "pull_image",
    "remove_image",
    "run_build",
    "source_hash",
    "split_ref",
]
