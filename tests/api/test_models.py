from pathlib import Path
from typing import Any

import pytest

from atoll.api import datasets, models, projects, versions
from atoll.api.context import AtollContext
from atoll.domain.records import Dataset, Model, ModelVersion, Project
from atoll.errors import (
    AlreadyExistsError,
    ConflictError,
    InvalidNameError,
    NotFoundError,
    ValidationError,
)

CLF = {"name": "clf.pkl", "required": True, "max_mb": 1}
DATA = {"name": "data.csv", "required": True}


def test_new_model_records_file_schemas(ctx: AtollContext) -> None:
    model = models.new_model(ctx, "iris", "flowers", [CLF], [DATA])
    assert model.revision == 1
    assert [s.name for s in model.model_files] == ["clf.pkl"]
    assert model.model_files[0].required and model.model_files[0].max_mb == 1
    assert models.get_model(ctx, "iris").desc == "flowers"


def test_bad_names_specs_and_duplicates_are_refused(ctx: AtollContext) -> None:
    with pytest.raises(InvalidNameError):
        models.new_model(ctx, "Iris")
    with pytest.raises(ValidationError, match="max_mb"):
        models.new_model(ctx, "iris", model_files=[{"name": "a", "max_mb": -1}])
    with pytest.raises(ValidationError, match="declared twice"):
        models.new_model(ctx, "iris", model_files=[CLF, CLF])
    with pytest.raises(ValidationError, match="plain file name"):
        models.new_model(ctx, "iris", data_files=[{"name": "../x"}])
    models.new_model(ctx, "iris")
    with pytest.raises(AlreadyExistsError):
        models.new_model(ctx, "iris")


def test_update_keeps_unspecified_fields_and_bumps_revision(ctx: AtollContext) -> None:
    models.new_model(ctx, "iris", "flowers", [CLF], [DATA])
    updated = models.update_model(ctx, "iris", data_files=[{"name": "other.csv"}])
    assert updated.revision == 2
    assert updated.desc == "flowers"
    assert [s.name for s in updated.model_files] == ["clf.pkl"]
    assert [s.name for s in updated.data_files] == ["other.csv"]
    cleared = models.update_model(ctx, "iris", no_model_files=True)
    assert cleared.model_files == [] and cleared.revision == 3
    with pytest.raises(ValidationError):
        models.update_model(ctx, "iris", model_files=[CLF], no_model_files=True)
    with pytest.raises(NotFoundError, match="nope"):
        models.update_model(ctx, "nope", desc="x")


def _populate(ctx: AtollContext, tmp_path: Path, make_dir: Any) -> None:
    models.new_model(ctx, "iris", "", [CLF], [DATA])
    datasets.new_dataset(ctx, "iris", "ds1", path=make_dir(tmp_path / "d", {"data.csv": b"a,b\n"}))
    versions.new_version(
        ctx, "iris", "v1", details={"acc": 0.9}, path=make_dir(tmp_path / "v", {"clf.pkl": b"x"}), dataset="ds1"
    )
    projects.new_project(ctx, "demo", models=["iris"])


def test_model_rm_refuses_with_dependents_then_cascades(ctx: AtollContext, tmp_path: Path, make_dir: Any) -> None:
    _populate(ctx, tmp_path, make_dir)
    assert ctx.files.list("")  # files stored
    with pytest.raises(ConflictError, match="demo"):
        models.delete_model(ctx, "iris")
    questions: list[str] = []
    with pytest.raises(ConflictError):
        models.delete_model(ctx, "iris", confirm=lambda q: questions.append(q) or False)
    assert "demo" in questions[0]
    # Nothing was touched by the refusals.
    assert ctx.metadata.exists(Dataset, "ds1", "iris") and ctx.files.list("")

    removal = models.delete_model(ctx, "iris", confirm=lambda q: True)
    assert removal.projects == ["demo"] and removal.datasets == ["ds1"] and removal.versions == ["v1"]
    assert not ctx.metadata.exists(Model, "iris")
    assert ctx.metadata.list(Dataset) == [] and ctx.metadata.list(ModelVersion) == []
    assert ctx.files.list("") == []
    assert ctx.metadata.get(Project, "demo").models == []


def test_model_without_dependents_is_removed_without_asking(ctx: AtollContext) -> None:
    models.new_model(ctx, "iris")
    models.delete_model(ctx, "iris")
    with pytest.raises(NotFoundError, match="iris"):
        models.get_model(ctx, "iris")


def test_list_with_filter(ctx: AtollContext) -> None:
    for name in ("iris", "wine", "digits"):
        models.new_model(ctx, name, desc=name.upper())
    names = [m.name for m in models.list_models(ctx, filter={"desc": {"$in": ["IRIS", "WINE"]}})]
    assert names == ["iris", "wine"]
