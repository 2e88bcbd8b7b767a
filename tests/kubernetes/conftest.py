"""Records and settings the Kubernetes tests share."""

from __future__ import annotations

from typing import Any

import pytest

from atoll.config import Config, load_config
from atoll.containers.base import TaskSpec
from atoll.domain.records import BuildVersion, Dataset, ModelVersion, Project, StoredFile

DIGEST = "registry.example:5000/atoll/iris@sha256:" + "ab" * 32
STORE = {"version": 1, "metadata": {"url": "postgresql://atoll:s3cr3t-pw@db:5432/atoll"},
         "file_store": {"type": "s3", "options": {"secret_key": "s3cr3t-key"}}}


@pytest.fixture
def kube_config(home: Any) -> Config:
    config = load_config(environ={"ATOLL_HOME": str(home)})
    config.container_manager.type = "kubernetes"
    config.docker.target_registry = "registry.example:5000"
    return config


def task_spec(kind: str = "train", name: str = "t1", **extra: Any) -> TaskSpec:
    project = Project(name="iris")
    build = BuildVersion(name="v1", proj="iris", container_manager="swarm", digest=DIGEST)
    return TaskSpec(kind=kind, project=project, build=build, name=name,  # type: ignore[arg-type]
                    notebook="train.ipynb", store_config=STORE, **extra)


def sample_inputs() -> dict[str, Any]:
    files = [StoredFile(name="measures.csv", size=10, sha256="0" * 64)]
    dataset = Dataset(name="ds1", model="iris-clf", files=files)
    version = ModelVersion(name="mv1", model="iris-clf", files=files)
    return {"datasets": [dataset], "versions": [version]}
