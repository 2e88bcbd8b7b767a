"""``noronha.tools``: a notebook written for Noronha inside an Atoll task (README, Coming from Noronha).

Inside tasks the package is ``noronha`` (a link in local environments, a
top-level package of the base image's wheel); here it is imported the way a
local environment offers it: a directory holding the ``noronha`` link on
``sys.path``. The task is staged as in ``test_publisher``.
"""

from __future__ import annotations

import importlib
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from test_publisher import _in_ide, _in_training, world  # noqa: F401 - the staged task fixture

import atoll
from atoll.api.builds import task_spec
from atoll.api.context import AtollContext
from atoll.config import Config
from atoll.containers.swarm.images import build_wheel
from atoll.domain.records import BuildVersion, ModelVersion, Project
from atoll.task.layout import NORONHA_COMPAT_ENV
from atoll.toolkit import paths


def _forget_noronha() -> None:
    for name in [n for n in sys.modules if n == "noronha" or n.startswith("noronha.")]:
        del sys.modules[name]


@pytest.fixture
def noronha(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """``import noronha`` as a local build environment offers it."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "noronha").symlink_to(Path(atoll.__file__).parent / "compat" / "noronha", target_is_directory=True)
    monkeypatch.syspath_prepend(str(site))
    _forget_noronha()
    yield importlib.import_module("noronha")
    _forget_noronha()


def test_the_shortcuts_find_what_atoll_staged(noronha: ModuleType, world: dict) -> None:  # noqa: F811
    from noronha.tools.shortcuts import data_path, dataset_meta, model_path, movers_meta, tmp_path, train_meta

    _in_training(world)
    assert data_path("measures.csv") == paths.data_path("measures.csv")
    assert Path(data_path(file_name="measures.csv", model="iris-clf", dataset="iris")).read_text() == "a,b\n1,2\n"
    assert tmp_path("clf.pkl") == paths.tmp_path("clf.pkl")
    assert train_meta()["name"] == "t1" and dataset_meta()["name"] == "iris"
    assert movers_meta(ignore=True) == {}  # no version staged in this training
    with pytest.raises(Exception, match="no model version is staged"):
        model_path("clf.pkl")


def test_publisher_takes_noronhas_arguments(noronha: ModuleType, world: dict, tmp_path: Path) -> None:  # noqa: F811
    from noronha.tools.publish import Publisher

    _in_training(world)
    elsewhere = tmp_path / "out"
    elsewhere.mkdir()
    (elsewhere / "clf.pkl").write_bytes(b"model")
    first = Publisher()(src_path=str(elsewhere), details={"metrics": {"accuracy": 0.9}}, uses_dataset=False)
    stored = world["metadata"].get(ModelVersion, "t1", "iris-clf")
    assert (first["name"], stored.details, stored.dataset) == ("t1", {"metrics": {"accuracy": 0.9}}, None)
    assert [f.name for f in stored.files] == ["clf.pkl"]
    Path(paths.tmp_path("clf.pkl")).write_bytes(b"model 2")  # src_path alone is published, as Noronha did
    second = Publisher()(src_path=paths.tmp_path(), version_name="t2", uses_pretrained=True,
                         pretrained_with="iris-clf:t1")
    assert second["pretrained"] == "iris-clf:t1" and second["dataset"]["name"] == "iris"
    with pytest.raises(Exception, match="src_path .*: no such file or directory"):
        Publisher()(src_path=str(tmp_path / "missing"), version_name="t3")


def test_the_names_are_the_toolkits_own(noronha: ModuleType) -> None:
    from noronha.tools import publish, shortcuts

    from atoll import toolkit

    for name in ("movers_meta", "train_meta", "require_movers"):
        assert getattr(shortcuts, name) is getattr(toolkit, name)
    assert publish.Publisher is toolkit.Publisher


def test_noronhas_keyword_names_and_ignore(noronha: ModuleType, world: dict) -> None:  # noqa: F811
    from noronha.tools.shortcuts import dataset_meta, require_dataset

    _in_training(world)
    assert dataset_meta(dataset="iris").name == "iris"  # a record reads as attributes, as Noronha's documents did
    assert dataset_meta(dataset="no-such", ignore=True) == {}
    with pytest.raises(Exception, match="no-such"):
        dataset_meta(dataset="no-such")
    assert Path(require_dataset(dataset="iris", model="iris-clf"), "measures.csv").read_text() == "a,b\n1,2\n"


def test_serving_names_and_the_lazy_servers_defaults(noronha: ModuleType, world: dict) -> None:  # noqa: F811
    from noronha.tools.online import OnlinePredict as Older
    from noronha.tools.publish import Publisher
    from noronha.tools.serving import LazyModelServer, OnlinePredict
    from test_lazy_update import _call

    from atoll.toolkit.serving import LazyModelServer as AtollLazyModelServer
    from atoll.toolkit.serving import OnlinePredict as AtollOnlinePredict

    assert OnlinePredict is Older is AtollOnlinePredict
    _in_ide(world)
    Path(paths.tmp_path("clf.pkl")).write_bytes(b"v")
    Publisher()(version_name="tried")  # in the IDE: staged into the session
    server = LazyModelServer(lambda body, model, meta: [body, model, meta.name],
                             lambda path, meta: Path(path, "clf.pkl").read_text(), "iris-clf")
    assert isinstance(server, AtollLazyModelServer)
    assert (server.model_name, server.max_models, server.enrich) == ("iris-clf", 100, False)
    # Noronha's lazy server answered the bare result; a bare version name is one of model_name's
    assert _call(server, "POST", "/predict", b"model_version=tried", b"x") == (200, ["x", "v", "tried"])


def test_turned_off_the_import_fails_saying_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = Config.model_validate({"metadata": {"url": "memory://"}, "file_store": {"type": "memory"},
                                    "container_manager": {"type": "memory", "noronha_compat": False}})
    spec = task_spec(AtollContext(config=config, cwd=tmp_path), "train", Project(name="p"),
                     BuildVersion(name="latest", proj="p"), "t1", env={"A": "1"})
    assert spec.env == {"A": "1", NORONHA_COMPAT_ENV: "0"}
    site = tmp_path / "site"
    site.mkdir()
    (site / "noronha").symlink_to(Path(atoll.__file__).parent / "compat" / "noronha", target_is_directory=True)
    monkeypatch.syspath_prepend(str(site))
    for key, value in spec.env.items():
        monkeypatch.setenv(key, value)
    _forget_noronha()
    try:
        with pytest.raises(ImportError, match=r"container_manager.noronha_compat: false.*atoll.toolkit"):
            importlib.import_module("noronha.tools.shortcuts")
    finally:
        _forget_noronha()
    on = Config.model_validate({"metadata": {"url": "memory://"}, "file_store": {"type": "memory"},
                                "container_manager": {"type": "memory"}})
    assert task_spec(AtollContext(config=on, cwd=tmp_path), "train", Project(name="p"),
                     BuildVersion(name="latest", proj="p"), "t1").env == {}


def test_the_base_images_wheel_installs_it_as_the_package_noronha(tmp_path: Path) -> None:
    with zipfile.ZipFile(build_wheel(tmp_path)) as wheel:
        names = set(wheel.namelist())
        record = wheel.read(next(n for n in names if n.endswith("/RECORD"))).decode()
    for module in ("__init__.py", "tools/__init__.py", "tools/shortcuts.py", "tools/publish.py",
                   "tools/serving.py", "tools/online.py"):
        assert f"noronha/{module}" in names and f"noronha/{module}," in record
