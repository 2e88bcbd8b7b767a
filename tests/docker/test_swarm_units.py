"""Parts of the swarm runtime that need no engine: error translation, staging, the wheel."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import orjson
import pytest

from atoll.config import load_config
from atoll.containers.base import TaskSpec
from atoll.containers.swarm.images import build_wheel, requirements_text, source_hash
from atoll.containers.swarm.stage import CONTAINER_DB_DIR, CONTAINER_FILES_DIR, container_store_config
from atoll.domain.records import BuildVersion, Project
from atoll.errors import BackendUnavailableError, UsageError


def test_a_daemon_that_does_not_answer_is_backend_unavailable(tmp_path: Path) -> None:
    pytest.importorskip("docker")
    from atoll.containers.swarm.engine import connect

    socket_path = tmp_path / "nothing.sock"
    config = load_config(tmp_path, {"ATOLL_HOME": str(tmp_path), "ATOLL_DOCKER__DAEMON_ADDRESS": f"unix://{socket_path}"})
    with pytest.raises(BackendUnavailableError) as failure:
        connect(config)
    assert str(failure.value).startswith(f"Docker daemon not reachable at unix://{socket_path}: ")


def test_embedded_stores_are_rewritten_to_container_paths_with_the_key_masked(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "secret.key").write_text("key")
    blank = tmp_path / "blank"
    blank.write_text("")
    store: dict[str, Any] = {"version": 1, "metadata": {"url": f"sqlite:///{home}/atoll.db"},
             "file_store": {"type": "local", "options": {"root": str(home / "files")}}}
    config, binds = container_store_config(store, blank)
    assert config["metadata"]["url"] == f"sqlite:///{CONTAINER_DB_DIR}/atoll.db"
    assert config["file_store"]["options"]["root"] == CONTAINER_FILES_DIR
    assert (str(home), CONTAINER_DB_DIR, False) in binds
    assert (str(blank), f"{CONTAINER_DB_DIR}/secret.key", True) in binds
    assert (str(home / "files"), CONTAINER_FILES_DIR, False) in binds
    assert store["metadata"]["url"].startswith(f"sqlite:///{home}")  # the caller's dict is untouched


def test_foreign_stores_are_handed_over_unchanged(tmp_path: Path) -> None:
    store = {"version": 1, "metadata": {"url": "postgresql://u:p@db:5432/atoll"},
             "file_store": {"type": "s3", "options": {"url": "http://files:9000", "bucket": "b"}}}
    config, binds = container_store_config(store, tmp_path / "blank")
    assert config == store and binds == []


def _manager(tmp_path: Path, **env: str) -> Any:
    from atoll.containers.swarm.manager import SwarmContainerManager
    from atoll.testing.memory import MemoryMetadataStore
    from atoll.testing.memory_files import MemoryFileStore

    config = load_config(tmp_path, {"ATOLL_HOME": str(tmp_path / "home"), "ATOLL_CONTAINER_MANAGER__TYPE": "swarm",
                                    **env})
    return SwarmContainerManager(config, MemoryMetadataStore(), MemoryFileStore())


def test_the_staged_layout_has_meta_data_model_and_a_private_store_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from atoll.containers.swarm.stage import task_binds

    monkeypatch.setenv("ATOLL_HOME", str(tmp_path / "home"))
    spec = TaskSpec(kind="train", project=Project(name="p"), build=BuildVersion(name="latest", proj="p"), name="t",
                    meta={"training": {"name": "t"}},
                    store_config={"version": 1, "metadata": {"url": "postgresql://x/y"},
                                  "file_store": {"type": "memory", "options": {}}})
    staged = _manager(tmp_path).stage_task(spec, tmp_path / "stage")
    assert orjson.loads((staged.root / "atoll" / "meta" / "training.json").read_bytes()) == {"name": "t"}
    assert (staged.root / "data").is_dir() and (staged.root / "model").is_dir()
    assert staged.store_file.stat().st_mode & 0o077 == 0
    targets = {target: ro for _, target, ro in task_binds(spec, staged, store_file=False)}
    assert targets == {"/atoll/meta": True, "/data": True, "/model": True}


def _embedded_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **extra: Any) -> tuple[Any, Any, Path]:
    from atoll.containers.swarm.stage import task_binds

    home = tmp_path / "home"
    monkeypatch.setenv("ATOLL_HOME", str(home))
    home.mkdir()
    (home / "atoll.db").write_bytes(b"")
    (home / "atoll.yaml").write_text("{}")
    (home / "files" / "datasets" / "old").mkdir(parents=True)
    (home / "files" / "datasets" / "old" / "a.csv").write_text("1")
    store = {"version": 1, "metadata": {"url": f"sqlite:///{home}/atoll.db"},
             "file_store": {"type": "local", "options": {"root": str(home / "files")}}}
    spec = TaskSpec(kind="train", project=Project(name="p"), build=BuildVersion(name="latest", proj="p"), name="t",
                    meta={"training": {"name": "t"}}, store_config=store, **extra)
    manager = _manager(tmp_path)
    staged = manager.stage_task(spec, tmp_path / "stage")
    return spec, (staged, task_binds(spec, staged, store_file=True)), home


def _owners(root: Path) -> set[tuple[int, int]]:
    return {(p.lstat().st_uid, p.lstat().st_gid) for p in [root, *root.rglob("*")]}


def test_as_root_a_task_runs_as_the_image_user_handed_what_it_writes(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from atoll.containers.spec import TASK_USER
    from atoll.containers.swarm.stage import task_user, user_env

    if os.geteuid() != 0:
        pytest.skip("handing files over needs root")
    spec, (staged, binds), home = _embedded_task(tmp_path, monkeypatch)
    assert task_user(spec, staged, binds) == TASK_USER and user_env(TASK_USER) == {}
    assert _owners(staged.root) == {TASK_USER}  # its records, inputs and 0600 store settings
    assert _owners(home / "files") == {TASK_USER}  # the local file store's tree
    assert {(p.stat().st_uid, p.stat().st_gid) for p in (home, home / "atoll.db")} == {TASK_USER}
    assert (home / "atoll.yaml").stat().st_uid == 0  # nothing else of the home


def test_as_a_user_a_task_runs_as_that_user_and_nothing_is_handed_over(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from atoll.containers.swarm.stage import task_user, user_env

    spec, (staged, binds), _ = _embedded_task(tmp_path, monkeypatch)
    before = _owners(tmp_path)
    monkeypatch.setattr(os, "geteuid", lambda: 1234)
    monkeypatch.setattr(os, "getegid", lambda: 567)
    assert task_user(spec, staged, binds) == (1234, 567)
    assert user_env((1234, 567)) == {"HOME": "/tmp"}  # no account of that uid in the image
    assert _owners(tmp_path) == before


def test_note_edit_runs_as_the_owner_of_the_project_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from atoll.containers.swarm.stage import task_user

    project = tmp_path / "project"
    project.mkdir()
    if os.geteuid() == 0:  # a directory a user owns (root's is refused: see the next test)
        os.chown(project, 4321, 4321)
    owner = (project.stat().st_uid, project.stat().st_gid)
    spec, (staged, binds), _ = _embedded_task(tmp_path, monkeypatch, edit_dir=project)
    assert task_user(spec, staged, binds) == owner
    assert (project.stat().st_uid, project.stat().st_gid) == owner  # never handed over


def test_an_ide_that_would_run_as_root_is_refused_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from atoll.containers.swarm.stage import task_user

    pytest.importorskip("docker")
    if os.geteuid() != 0:
        pytest.skip("a directory root owns needs root")
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.setenv("ATOLL_HOME", str(tmp_path / "home"))
    build = BuildVersion(name="latest", proj="p", image_id="sha256:" + "0" * 64)
    spec = TaskSpec(kind="ide", project=Project(name="p"), build=build, name="ide", edit_dir=project)
    manager = _manager(tmp_path, ATOLL_DOCKER__DAEMON_ADDRESS=f"unix://{tmp_path}/no-daemon.sock")
    assert str(manager.config.docker.daemon_address).endswith("no-daemon.sock")  # never the real engine
    assert manager.ide_uid(project) == 0 and manager.ide_uid(None) != 0
    with pytest.raises(UsageError, match=r"Jupyter would run as root .* or pass --allow-root$"):
        manager.start_ide(spec, "token")
    assert "client" not in manager.__dict__ and not (tmp_path / "home" / "tasks").exists()  # no engine, no staging
    spec.allow_root = True  # --allow-root: on to the engine (none answers here)
    with pytest.raises(BackendUnavailableError):
        manager.start_ide(spec, "token")
    (tmp_path / "allowed").mkdir()
    spec, (staged, binds), _ = _embedded_task(tmp_path / "allowed", monkeypatch, edit_dir=project, allow_root=True)
    assert task_user(spec, staged, binds) == (0, 0)


def test_a_port_with_several_replicas_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("docker")
    monkeypatch.setenv("ATOLL_HOME", str(tmp_path / "home"))
    spec = TaskSpec(kind="deploy", project=Project(name="p"), build=BuildVersion(name="latest", proj="p",
                    image_id="sha256:" + "0" * 64), name="d", replicas=2, port=31000)
    with pytest.raises(UsageError, match="--port"):
        _manager(tmp_path).start_generation(spec, 1, None, 10, lambda _line: None)


def test_the_wheel_holds_the_package_and_its_metadata(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "atoll/runner/train.py" in names and "atoll/resources/docker/base.Dockerfile" in names
    assert not [n for n in names if "__pycache__" in n]
    assert "Requires-Dist: papermill" in metadata
    assert len(source_hash()) == 64


def test_the_base_requirements_resolve_the_image_extras() -> None:
    text = requirements_text()
    assert "jupyterlab" in text and "boto3" in text and "papermill" in text
    assert "pytest" not in text and "extra ==" not in text
