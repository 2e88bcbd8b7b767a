"""``container_manager.max_replicas``: the bound on a deployment's replicas, checked before anything is recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from atoll.api.deployments import check_replicas
from atoll.config import AutoScale, Config, ResourceProfile
from atoll.config import load_config as _load
from atoll.errors import ConfigError, UsageError


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./atoll.yaml of the machine


def load_config(environ: dict[str, str]) -> Config:
    return _load(cwd=Path.cwd(), environ={"ATOLL_HOME": str(Path.cwd() / "home"), **environ})


def test_replicas_up_to_the_bound_pass_and_above_it_name_the_setting() -> None:
    config = load_config(environ={})
    assert config.container_manager.max_replicas == 32
    check_replicas(config, 32)
    with pytest.raises(UsageError, match=r"-n/--n-tasks 33 is above container_manager.max_replicas \(32\)"):
        check_replicas(config, 33)
    for bad in (0, -1, True):
        with pytest.raises(UsageError, match="positive integer"):
            check_replicas(config, bad)


def test_the_bound_is_configurable_and_must_be_positive() -> None:
    config = load_config(environ={"ATOLL_CONTAINER_MANAGER__MAX_REPLICAS": "100"})
    check_replicas(config, 100)
    with pytest.raises(ConfigError, match="container_manager.max_replicas"):
        load_config(environ={"ATOLL_CONTAINER_MANAGER__MAX_REPLICAS": "0"})


def test_a_deploy_profile_may_not_autoscale_past_the_bound() -> None:
    config = load_config(environ={})
    profile = ResourceProfile(cpu_request=0.5, auto_scale=AutoScale(min_replicas=2, max_replicas=40))
    with pytest.raises(UsageError, match=r"auto_scale.max_replicas \(40\) is above container_manager.max_replicas"):
        check_replicas(config, 2, profile)
    check_replicas(config, 2, ResourceProfile(cpu_request=0.5, auto_scale=AutoScale(max_replicas=32)))
