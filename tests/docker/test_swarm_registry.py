"""Builds pushed to ``docker.target_registry`` and ``--pre-built`` pulls, against a real registry.

The registry is Debian's ``docker-registry`` run as a process on a free
loopback port (the engine trusts 127.0.0.0/8 registries without TLS).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from support.processes import free_port
from support.registry import serve_registry

if TYPE_CHECKING:
    from docker import DockerClient

pytestmark = pytest.mark.docker

_serve_registry = serve_registry


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    with _serve_registry(tmp_path) as address:
        yield address


def test_a_build_is_pushed_and_recorded_by_digest_and_pre_built_pulls_it(
    swarm_client: DockerClient, python_image: str, registry: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from docker.errors import APIError, NotFound

    import atoll
    from atoll.api import builds, projects
    from atoll.api.context import AtollContext
    from atoll.config import load_config

    suffix = uuid.uuid4().hex[:6]
    pushed, pulled = f"tiny-{suffix}", f"pre-{suffix}"
    home_dir = tmp_path / "tiny"
    home_dir.mkdir()
    (home_dir / "hello.py").write_text("print('hello')\n")
    monkeypatch.setenv("ATOLL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ATOLL_CONTAINER_MANAGER__TYPE", "swarm")
    monkeypatch.setenv("ATOLL_CONTAINER_MANAGER__NAMESPACE", f"atoll-t{suffix}")
    monkeypatch.setenv("ATOLL_DOCKER__TARGET_REGISTRY", registry)
    monkeypatch.setenv("ATOLL_DOCKER__PYTHON_IMAGE", python_image)
    repo = f"{registry}/atoll/{pushed}"
    created = [f"{repo}:latest", f"{registry}/atoll/base:{atoll.__version__}"]
    ctx = AtollContext(load_config(home_dir), cwd=home_dir)
    try:
        projects.new_project(ctx, pushed, home_dir=str(home_dir))
        build = builds.build_project(ctx, pushed, source="home", log=lambda _line: None)
        assert build.image == f"{repo}:latest"
        assert build.digest is not None and build.digest.startswith(f"{repo}@sha256:")
        swarm_client.images.remove(f"{repo}:latest")  # what --pre-built runs must come from the registry

        projects.new_project(ctx, pulled, docker_repo=repo)
        prebuilt = builds.build_project(ctx, pulled, source="pre-built", log=lambda _line: None)
        assert prebuilt.built_from == "pre-built"
        assert prebuilt.digest == build.digest
        assert swarm_client.images.get(f"{repo}:latest").id == prebuilt.image_id == build.image_id
    finally:
        ctx.close()
        for ref in created:
            try:
                swarm_client.images.remove(ref)
            except (NotFound, APIError):
                pass


def test_a_failed_pull_says_whether_the_image_is_missing_or_the_registry_unreachable(
    swarm_client: DockerClient, registry: str, tmp_path: Path
) -> None:
    from atoll.config import load_config
    from atoll.containers.swarm.images import pull_image
    from atoll.errors import BackendUnavailableError, NotFoundError

    config = load_config(tmp_path, environ={"ATOLL_HOME": str(tmp_path / "home")})
    with pytest.raises(NotFoundError, match="was not found in its registry"):
        pull_image(swarm_client, config, f"{registry}/atoll/nothing-{uuid.uuid4().hex[:6]}:1")
    with pytest.raises(BackendUnavailableError, match="cannot be reached"):
        pull_image(swarm_client, config, f"127.0.0.1:{free_port()}/atoll/nothing:1")


def test_the_registry_secret_logs_pushes_and_pulls_in(
    swarm_client: DockerClient, python_image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import warnings

    from docker.errors import APIError, NotFound

    from atoll import credentials
    from atoll.api import builds, projects
    from atoll.api.context import AtollContext
    from atoll.config import load_config
    from atoll.domain.records import TreasureChest
    from atoll.errors import BackendError, ExecutionError

    with warnings.catch_warnings():  # crypt is the only bcrypt here; the registry takes bcrypt only
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt

        hashed = crypt.crypt("s3cret-pw", crypt.mksalt(crypt.METHOD_BLOWFISH))
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(f"pusher:{hashed}\n")
    suffix = uuid.uuid4().hex[:6]
    home_dir = tmp_path / "tiny"
    home_dir.mkdir()
    (home_dir / "hello.py").write_text("print('hello')\n")
    with _serve_registry(tmp_path, htpasswd) as registry:
        monkeypatch.setenv("ATOLL_HOME", str(tmp_path / "home"))
        monkeypatch.setenv("ATOLL_CONTAINER_MANAGER__TYPE", "swarm")
        monkeypatch.setenv("ATOLL_CONTAINER_MANAGER__NAMESPACE", f"atoll-t{suffix}")
        monkeypatch.setenv("ATOLL_DOCKER__TARGET_REGISTRY", registry)
        monkeypatch.setenv("ATOLL_DOCKER__PYTHON_IMAGE", python_image)
        repo = f"{registry}/atoll/auth-{suffix}"
        ctx = AtollContext(load_config(home_dir), cwd=home_dir)
        try:
            projects.new_project(ctx, f"auth-{suffix}", home_dir=str(home_dir))
            with pytest.raises(ExecutionError, match="pushing"):  # no secret: the registry refuses
                builds.build_project(ctx, f"auth-{suffix}", source="home", log=lambda _line: None)
            ctx.metadata.create(TreasureChest(name="reg", user="pusher", secret=credentials.encrypt("s3cret-pw")))
            monkeypatch.setenv("ATOLL_DOCKER__REGISTRY_SECRET", "reg")
            ctx.close()
            ctx = AtollContext(load_config(home_dir), cwd=home_dir)
            build = builds.build_project(ctx, f"auth-{suffix}", source="home", log=lambda _line: None)
            assert build.digest is not None and build.digest.startswith(f"{repo}@sha256:")
            swarm_client.images.remove(f"{repo}:latest")

            projects.new_project(ctx, f"pre-{suffix}", docker_repo=repo)
            prebuilt = builds.build_project(ctx, f"pre-{suffix}", source="pre-built", log=lambda _line: None)
            assert prebuilt.digest == build.digest
            monkeypatch.delenv("ATOLL_DOCKER__REGISTRY_SECRET")
            ctx.close()
            ctx = AtollContext(load_config(home_dir), cwd=home_dir)
            swarm_client.images.remove(f"{repo}:latest")
            with pytest.raises(BackendError, match="refused"):
                builds.build_project(ctx, f"pre-{suffix}", source="pre-built", log=lambda _line: None)
        finally:
            ctx.close()
            for ref in (f"{repo}:latest",):
                try:
                    swarm_client.images.remove(ref)
                except (NotFound, APIError):
                    pass
