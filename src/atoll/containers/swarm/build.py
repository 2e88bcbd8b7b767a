"""Project images on the swarm runtime (DESIGN.md §5).

A build is an image ``atoll/<proj>:<tag>`` (``<target_registry>/atoll/...``
and pushed when a target registry is configured) made from the gathered
source dir. A project's own ``Dockerfile`` must start ``FROM`` the base image
(the ``ATOLL_BASE_IMAGE`` build argument names it) or ``FROM
noronhadataops/noronha[:tag]``, which builds on the base image too
(:mod:`atoll.containers.dockerfile`); without one Atoll writes the obvious
one. The record keeps the image id and a digest — the registry's
``RepoDigests`` entry when pushed, else the image id — and tasks run that,
never the (movable) tag. ``--pre-built`` pulls ``<docker_repo>:<tag>``.

Pushes and pulls log in with the treasure chest named by
``docker.registry_secret`` (user + password or token), handed to the engine
per request: nothing is written to a Docker config file.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from atoll.config import Config
from atoll.containers.base import BuildRequest, LogSink
from atoll.containers.dockerfile import check_noronha_base, map_noronha_base
from atoll.containers.swarm.engine import LABEL_KIND, LABEL_PROJECT, engine_errors
from atoll.containers.swarm.images import ensure_base_image, pull_image, run_build
from atoll.credentials import read_chest
from atoll.domain.records import BuildVersion
from atoll.errors import BackendError, ExecutionError, UsageError

if TYPE_CHECKING:
    from atoll.metadata.base import MetadataStore
    from docker import DockerClient

# No `COPY requirements.txt*`: the classic builder fails on a glob matching nothing.
_DEFAULT_DOCKERFILE = """\
# Written by Atoll: the project has no Dockerfile of its own.
ARG ATOLL_BASE_IMAGE
FROM ${{ATOLL_BASE_IMAGE}}
USER root
{requirements}COPY --chown=10001:10001 . /app
WORKDIR /app
USER 10001:10001
"""
_REQUIREMENTS = """\
COPY requirements.txt /tmp/atoll-requirements.txt
RUN pip install -r /tmp/atoll-requirements.txt && rm /tmp/atoll-requirements.txt
"""
_DOCKERIGNORE = (".git", "**/__pycache__", "**/.ipynb_checkpoints", ".venv", "**/*.pyc")


def image_repository(config: Config, project: str) -> str:
    """``atoll/<proj>``, under the target registry when one is configured."""
    repo = f"atoll/{project}"
    return f"{config.docker.target_registry}/{repo}" if config.docker.target_registry else repo


def runnable_ref(build: BuildVersion) -> str:
    """What tasks run: the recorded digest (``repo@sha256:...``) or image id, never the tag.

    Raises:
        UsageError: the build was not made by a Docker runtime.
    """
    ref = build.digest or build.image_id
    if not ref:
        raise UsageError(
            f"build {build.ref} was made by the {build.container_manager!r} runtime and has no image; "
            "rebuild it with container_manager.type: swarm"
        )
    return ref


def registry_auth(config: Config, metadata: MetadataStore | None) -> dict[str, str] | None:
    """The engine's ``auth_config`` from the chest ``docker.registry_secret`` (None when unset).

    The chest is read from the chest store in ``ATOLL_HOME``, then from
    ``metadata`` (where earlier versions created chests) when given.

    Raises:
        ConfigError: the chest does not exist.
    """
    name = config.docker.registry_secret
    if not name:
        return None
    user, secret = read_chest(config, name, "docker.registry_secret", fallback=metadata)
    return {"username": user, "password": secret}


def build_image(client: DockerClient, config: Config, request: BuildRequest, log: LogSink,
                metadata: MetadataStore | None = None) -> BuildVersion:
    """Build (or pull, for ``pre-built``) the project image and return the unsaved record.

    ``metadata`` is where the ``docker.registry_secret`` chest is looked up when the chest store lacks it.
    """
    project = request.project.name
    auth = registry_auth(config, metadata)
    if request.built_from == "pre-built":
        return pull_prebuilt(client, config, request, log, auth)
    source = request.source_dir
    own = source / "Dockerfile"
    text = own.read_text(errors="replace") if own.is_file() else ""
    noronha = check_noronha_base(text, config)  # refused before any build when the compatibility is off
    base = ensure_base_image(client, config, log)
    repo = image_repository(config, project)
    ref = f"{repo}:{request.tag}"
    with tempfile.TemporaryDirectory(prefix="atoll-dockerfile-") as tmp:
        if own.is_file():
            first = _first_from(text)
            if noronha:  # a Noronha project: its base image is Atoll's
                dockerfile = str(Path(tmp) / "Dockerfile")
                Path(dockerfile).write_text(map_noronha_base(text, base))
                log(f"the project's Dockerfile starts FROM {first} (Noronha's base image): building it FROM {base}")
            else:
                if first is not None and "ATOLL_BASE_IMAGE" not in first and not first.startswith(base):
                    log(f"warning: the project's Dockerfile starts {first!r}, not FROM the base image ${{ATOLL_BASE_IMAGE}}")
                dockerfile = str(own)
        else:
            text = _DEFAULT_DOCKERFILE.format(
                requirements=_REQUIREMENTS if (source / "requirements.txt").is_file() else ""
            )
            dockerfile = str(Path(tmp) / "Dockerfile")
            Path(dockerfile).write_text(text)
            log("no Dockerfile in the project: using FROM the base image + requirements.txt + COPY . /app")
        if not (source / ".dockerignore").exists():
            # The SDK reads .dockerignore from the context only; without one keep
            # caches and VCS data out by building from a filtered copy.
            source = _filtered_copy(source, Path(tmp) / "context")
        image_id = run_build(
            client,
            config,
            log,
            path=str(source),
            dockerfile=dockerfile,
            tag=ref,
            nocache=request.no_cache,
            buildargs={"ATOLL_BASE_IMAGE": base},
            labels={LABEL_KIND: "build", LABEL_PROJECT: project, "io.atoll.tag": request.tag},
            what=f"project {project}",
        )
    digest = push_image(client, config, repo, request.tag, log, auth) if config.docker.target_registry else image_id
    log(f"built {ref} ({image_id[:19]})")
    return BuildVersion(
        name=request.tag,
        proj=project,
        container_manager="swarm",
        built_from=request.built_from,
        code_hash=request.code_hash,
        git_commit=request.git_commit,
        image=ref,
        image_id=image_id,
        digest=digest,
        details={"base_image": base},
    )


def _first_from(text: str) -> str | None:
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.upper().startswith("FROM "):
            return stripped[5:].strip()
    return None


def _filtered_copy(source: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(source, dest, symlinks=True, ignore=shutil.ignore_patterns(".git", "__pycache__",
                    ".ipynb_checkpoints", ".venv", "*.pyc"))
    return dest


def push_image(client: DockerClient, config: Config, repo: str, tag: str, log: LogSink,
               auth: dict[str, str] | None = None) -> str:
    """Push ``repo:tag`` and return ``repo@sha256:...`` as the registry reports it.

    Raises:
        ExecutionError: the registry refused the push.
    """
    digest: str | None = None
    with engine_errors(config, f"pushing {repo}:{tag}"):
        for item in client.images.push(repo, tag, stream=True, decode=True, auth_config=auth):
            if "error" in item:
                raise ExecutionError(f"pushing {repo}:{tag} failed: {item['error']}")
            aux = item.get("aux")
            if isinstance(aux, dict) and aux.get("Digest"):
                digest = str(aux["Digest"])
            if item.get("status") and item.get("id") is None:
                log(str(item["status"]))
    if digest is None:
        raise ExecutionError(f"pushing {repo}:{tag}: the registry reported no digest")
    return f"{repo}@{digest}"


def pull_prebuilt(client: DockerClient, config: Config, request: BuildRequest, log: LogSink,
                  auth: dict[str, str] | None = None) -> BuildVersion:
    """``--pre-built``: pull ``<docker_repo>:<tag>`` and record it by digest.

    Raises:
        UsageError: the project has no docker repository.
        NotFoundError: the registry has no such image.
        BackendError: the registry refused the credentials.
        BackendUnavailableError: the registry cannot be reached.
    """
    project = request.project
    if not project.docker_repo:
        raise UsageError(
            f"project {project.name} has no docker repo (set it with `atoll proj update --docker-repo`)"
        )
    ref = f"{project.docker_repo}:{request.tag}"
    log(f"pulling {ref}")
    image = pull_image(client, config, ref, auth)
    repo_digests = [d for d in image.attrs.get("RepoDigests") or [] if d.startswith(project.docker_repo + "@")]
    if not repo_digests:
        raise BackendError(f"pulled {ref} but the engine reports no digest for it")
    return BuildVersion(
        name=request.tag,
        proj=project.name,
        container_manager="swarm",
        built_from="pre-built",
        code_hash="",
        image=ref,
        image_id=str(image.id),
        digest=repo_digests[0],
    )


__all__ = ["build_image", "image_repository", "pull_prebuilt", "push_image", "runnable_ref"]
