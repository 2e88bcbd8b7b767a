"""``task_spec``: what trainings, deployments and the IDE hand the container manager."""

from pathlib import Path

import pytest

from atoll.api.builds import task_spec
from atoll.api.context import AtollContext
from atoll.config import Config
from atoll.domain.records import BuildVersion, Project
from atoll.errors import ConfigError

PROJECT = Project(name="iris")
BUILD = BuildVersion(name="latest", proj="iris")


def _ctx(tmp_path: Path, **section: object) -> AtollContext:
    config = Config.model_validate({
        "metadata": {"url": "memory://"}, "file_store": {"type": "memory"},
        "container_manager": {"type": "memory", **section},
    })
    return AtollContext(config=config, cwd=tmp_path)


def test_each_kind_gets_the_profile_its_setting_names(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, resource_profiles={"small": {"cpu_limit": 0.5}}, train_profile="small")
    spec = task_spec(ctx, "train", PROJECT, BUILD, "t1", notebook="train.ipynb", env={"A": "1"})
    assert spec.kind == "train" and spec.name == "t1" and spec.build == BUILD and spec.project == PROJECT
    assert spec.notebook == "train.ipynb" and spec.env == {"A": "1"}
    assert spec.profile is not None and spec.profile.cpu_limit == 0.5
    assert spec.store_config  # the stores the task reaches
    assert task_spec(ctx, "deploy", PROJECT, BUILD, "d1").profile is None
    picked = task_spec(ctx, "deploy", PROJECT, BUILD, "d1", "small")  # --resource-profile small
    assert (picked.profile_name, picked.profile) == ("small", spec.profile)


def test_the_ide_gets_the_profile_ide_profile_names(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, resource_profiles={"lab": {"memory_limit": 2048}}, ide_profile="lab")
    spec = task_spec(ctx, "ide", PROJECT, BUILD, "ide")
    assert (spec.profile_name, spec.profile.memory_limit if spec.profile else None) == ("lab", 2048)


def test_a_profile_that_is_not_defined_is_a_config_error(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, resource_profiles={"small": {"cpu_limit": 0.5}}, deploy_profile="huge")
    with pytest.raises(ConfigError, match="container_manager.deploy_profile 'huge'.*small"):
        task_spec(ctx, "deploy", PROJECT, BUILD, "d1")
