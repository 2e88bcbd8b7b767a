"""Who the IDE runs as: never root unless ``--allow-root`` (Jupyter's own rule), decided before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from atoll.containers.spec import refuse_root_ide
from atoll.errors import UsageError


def test_root_is_refused_naming_both_ways_out() -> None:
    with pytest.raises(UsageError) as refused:
        refuse_root_ide(0, Path("/srv/demo"), allow_root=False)
    assert str(refused.value) == ("Jupyter would run as root (/srv/demo belongs to root): give it to a user "
                                  "(`chown -R USER /srv/demo`) or pass --allow-root")


@pytest.mark.parametrize(("uid", "allow_root"), [(0, True), (10001, False), (1000, False), (None, False)],
                         ids=["root-allowed", "image-user", "a-user", "the-invoking-user"])
def test_anything_else_starts(uid: int | None, allow_root: bool) -> None:
    refuse_root_ide(uid, Path("/srv/demo"), allow_root=allow_root)  # no error: None is the local runtime's


def test_the_local_and_memory_runtimes_leave_the_user_as_it_is_and_kubernetes_never_runs_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from atoll.config import Config
    from atoll.containers.kubernetes.manager import KubernetesContainerManager
    from atoll.containers.local import LocalContainerManager
    from atoll.testing.memory import MemoryMetadataStore
    from atoll.testing.memory_files import MemoryFileStore

    monkeypatch.setenv("ATOLL_HOME", str(tmp_path))
    stores = (MemoryMetadataStore(), MemoryFileStore())
    assert LocalContainerManager(Config(), *stores).ide_uid(tmp_path) is None
    kube = Config.model_validate({"container_manager": {"type": "kubernetes"},
                                  "docker": {"target_registry": "registry.example:5000"}})
    assert KubernetesContainerManager(kube, *stores).ide_uid(tmp_path) == 10001
