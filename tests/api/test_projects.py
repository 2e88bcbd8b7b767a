from pathlib import Path

import pytest

from atoll.api import models, projects, records
from atoll.api.context import AtollContext
from atoll.config import Config
from atoll.domain.records import BuildVersion, Deployment, Project, Task, Training
from atoll.errors import ConflictError, NotFoundError, UsageError


def test_new_project_checks_models_and_home_dir(ctx: AtollContext, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="iris"):
        projects.new_project(ctx, "demo", models=["iris"])
    models.new_model(ctx, "iris")
    with pytest.raises(UsageError, match="not a directory"):
        projects.new_project(ctx, "demo", home_dir=str(tmp_path / "nope"))
    proj = projects.new_project(ctx, "demo", "d", ["iris", "iris"], home_dir=str(ctx.cwd), git_repo="https://g/x.git")
    assert proj.models == ["iris"] and proj.home_dir == str(ctx.cwd)
    assert [p.name for p in projects.list_projects(ctx, model="iris")] == ["demo"]
    assert projects.list_projects(ctx, model="wine") == []


def test_update_keeps_fields(ctx: AtollContext) -> None:
    projects.new_project(ctx, "demo", "first", git_repo="g")
    updated = projects.update_project(ctx, "demo", docker_repo="reg/demo")
    assert updated.desc == "first" and updated.git_repo == "g" and updated.docker_repo == "reg/demo"
    assert projects.update_project(ctx, "demo", git_repo="").git_repo is None


def test_project_resolution_order(ctx: AtollContext, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no project given"):
        projects.resolve_project_name(ctx, None)
    ctx.config = Config.model_validate({"project": {"working_project": "fallback"}})
    assert projects.resolve_project_name(ctx, None) == "fallback"
    projects.new_project(ctx, "homed", home_dir=str(ctx.cwd))
    assert projects.resolve_project_name(ctx, None) == "homed"
    assert projects.resolve_project_name(ctx, "explicit") == "explicit"
    assert projects.get_project(ctx).name == "homed"


def _train(name: str, task_id: str, state: str) -> Training:
    return Training(name=name, proj="demo", notebook="n.ipynb", bvers=BuildVersion(name="latest", proj="demo"),
                    task=Task(state=state), task_id=task_id)


def test_project_rm_asks_then_removes_runtime_and_records(ctx: AtollContext) -> None:
    projects.new_project(ctx, "demo")
    build = ctx.metadata.create(BuildVersion(name="latest", proj="demo"))
    ctx.metadata.create(_train("t1", "pid-1", "RUNNING"))
    ctx.metadata.create(_train("t2", "pid-2", "FINISHED"))
    ctx.metadata.create(Deployment(name="web", proj="demo", notebook="p.ipynb", bvers=build))
    with pytest.raises(ConflictError, match="1 deployment"):
        projects.delete_project(ctx, "demo")
    assert ctx.containers.calls == []  # type: ignore[attr-defined]
    removal = projects.delete_project(ctx, "demo", confirm=lambda q: True)
    assert removal.deployments == ["demo:web"] and removal.builds == ["demo:latest"]
    calls = ctx.containers.calls  # type: ignore[attr-defined]
    assert calls[:2] == [("stop_ide", "demo"), ("remove_service", "demo:web")]
    assert ("stop_task", "pid-1") in calls and ("stop_task", "pid-2") not in calls
    assert ("remove_task", "pid-2") in calls and calls[-1] == ("remove_build", "latest")
    assert not ctx.metadata.exists(Project, "demo")
    assert ctx.metadata.list(Training) == [] and ctx.metadata.list(BuildVersion) == []


def test_build_in_use_needs_confirmation(ctx: AtollContext) -> None:
    projects.new_project(ctx, "demo")
    build = ctx.metadata.create(BuildVersion(name="v1", proj="demo"))
    ctx.metadata.create(Deployment(name="web", proj="demo", notebook="p.ipynb", bvers=build))
    with pytest.raises(ConflictError, match="web"):
        records.remove_record(ctx, BuildVersion, "v1", "demo")
    records.remove_record(ctx, BuildVersion, "v1", "demo", confirm=lambda q: True)
    assert ("remove_build", "v1") in ctx.containers.calls  # type: ignore[attr-defined]
    with pytest.raises(NotFoundError, match="v1"):
        records.get_record(ctx, BuildVersion, "v1", "demo")


def test_records_removable_without_a_container_manager(ctx: AtollContext) -> None:
    from atoll.config import ContainerManagerSection

    del ctx.__dict__["containers"]
    ctx.config = Config(container_manager=ContainerManagerSection(type="nonexistent"))
    projects.new_project(ctx, "demo")
    build = ctx.metadata.create(BuildVersion(name="v1", proj="demo"))
    ctx.metadata.create(Deployment(name="web", proj="demo", notebook="p.ipynb", bvers=build))
    records.remove_record(ctx, Deployment, "web", "demo")
    assert records.list_records(ctx, Deployment, "demo") == []
