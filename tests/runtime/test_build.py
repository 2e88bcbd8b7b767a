"""Local builds: code snapshots, cached environments, git sources."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from atoll.api import builds, projects
from atoll.api.context import AtollContext
from atoll.containers.local.build import ENV_MARKER, code_hash, project_files
from atoll.domain.records import BuildVersion
from atoll.errors import ExecutionError, UsageError

pytestmark = pytest.mark.slow


def _git(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=cwd, capture_output=True, text=True, check=True, timeout=60,
    )
    return done.stdout.strip()


def _project(iris: Any, tmp_path: Path, name: str, **kwargs: Any) -> Path:
    """A copy of the iris example recorded as project ``name``."""
    src = tmp_path / name
    shutil.copytree(iris.project_dir, src)
    projects.new_project(iris.ctx, name, models=["iris-clf"], home_dir=str(src), **kwargs)
    return src


def test_first_build_records_the_build(iris: Any) -> None:
    build = iris.build
    assert (build.name, build.proj, build.built_from, build.container_manager) == ("latest", "iris", "home", "local")
    assert build.code_hash == code_hash(iris.project_dir)
    assert build.git_commit is None  # not a git checkout
    app = Path(build.location or "") / "app"
    assert (app / "notebooks" / "train.ipynb").is_file()
    assert (app / "datasets" / "iris" / "measures.csv").is_file()
    env = Path(build.details["env_dir"])
    assert env.name == build.env_hash and (env / ENV_MARKER).is_file()
    probe = subprocess.run(
        [str(env / "bin" / "python"), "-c", "import atoll, sklearn, papermill; print(atoll.__file__)"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert probe.returncode == 0, probe.stderr
    assert iris.ctx.metadata.get(BuildVersion, "latest", "iris").revision == 1


def test_rebuild_with_same_requirements_reuses_the_env(iris: Any, tmp_path: Path) -> None:
    src = _project(iris, tmp_path, "iris-again")
    (src / "notebooks" / "extra.py").write_text("X = 1\n")
    lines: list[str] = []
    started = time.monotonic()
    build = builds.build_project(iris.ctx, "iris-again", source="home", log=lines.append)
    elapsed = time.monotonic() - started
    iris.notes["rebuild_seconds"] = elapsed
    assert build.details["env_reused"] is True
    assert build.env_hash == iris.build.env_hash
    assert any("reusing environment" in line for line in lines)
    assert elapsed < 15, f"a rebuild with unchanged requirements took {elapsed:.1f}s"
    assert build.code_hash != iris.build.code_hash  # one more file


def test_code_hash_follows_the_code_and_a_rebuild_replaces_the_tag(iris: Any, tmp_path: Path) -> None:
    src = _project(iris, tmp_path, "iris-hash")
    (src / ".ipynb_checkpoints").mkdir()
    (src / ".ipynb_checkpoints" / "junk.ipynb").write_text("{}")
    (src / "__pycache__").mkdir()
    (src / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    assert code_hash(src) == iris.build.code_hash, "caches and checkpoints must not change the hash"
    assert not any(".ipynb_checkpoints" in p.parts for p in project_files(src))

    first = builds.build_project(iris.ctx, "iris-hash", source="home", log=lambda _l: None)
    nb = src / "notebooks" / "train.ipynb"
    nb.write_text(nb.read_text().replace("cv_folds = 5", "cv_folds = 3"))
    second = builds.build_project(iris.ctx, "iris-hash", source="home", log=lambda _l: None)
    assert second.code_hash != first.code_hash
    assert second.location != first.location
    assert "cv_folds = 5" in (Path(first.location or "") / "app" / "notebooks" / "train.ipynb").read_text()
    assert "cv_folds = 3" in (Path(second.location or "") / "app" / "notebooks" / "train.ipynb").read_text()
    stored = iris.ctx.metadata.get(BuildVersion, "latest", "iris-hash")
    assert stored.revision == 2 and stored.code_hash == second.code_hash


def test_build_from_git_records_the_commit(iris: Any, tmp_path: Path) -> None:
    work = tmp_path / "work"
    shutil.copytree(iris.project_dir, work)
    _git("init", "--quiet", "-b", "main", cwd=work)
    _git("add", "-A", cwd=work)
    _git("commit", "--quiet", "-m", "first", cwd=work)
    first_commit = _git("rev-parse", "HEAD", cwd=work)
    (work / "NOTES.md").write_text("second commit\n")
    _git("add", "-A", cwd=work)
    _git("commit", "--quiet", "-m", "second", cwd=work)
    head = _git("rev-parse", "HEAD", cwd=work)
    bare = tmp_path / "iris.git"
    _git("clone", "--quiet", "--bare", str(work), str(bare), cwd=tmp_path)
    projects.new_project(iris.ctx, "iris-git", models=["iris-clf"], git_repo=str(bare))

    build = builds.build_project(iris.ctx, "iris-git", tag="head", source="git", log=lambda _l: None)
    assert (build.built_from, build.git_commit) == ("git", head)
    assert (Path(build.location or "") / "app" / "NOTES.md").is_file()
    assert not (Path(build.location or "") / "app" / ".git").exists()

    old = builds.build_project(
        iris.ctx, "iris-git", tag="first", source="git", git_ref=first_commit, log=lambda _l: None
    )
    assert old.git_commit == first_commit
    assert old.code_hash == iris.build.code_hash  # the same files as the example
    assert not (Path(old.location or "") / "app" / "NOTES.md").exists()

    # building "here" from a git checkout records its HEAD too
    with AtollContext(iris.ctx.config, cwd=work) as in_checkout:
        here = builds.build_project(in_checkout, "iris-git", tag="here", log=lambda _l: None)
    assert (here.built_from, here.git_commit) == ("here", head)

    with pytest.raises(ExecutionError, match="git checkout failed"):
        builds.build_project(iris.ctx, "iris-git", source="git", git_ref="no-such-ref", log=lambda _l: None)


def test_build_refusals(iris: Any) -> None:
    with pytest.raises(UsageError, match="pre-built"):
        builds.build_project(iris.ctx, "iris", source="pre-built", log=lambda _l: None)
    with pytest.raises(UsageError, match="no git repo"):
        builds.build_project(iris.ctx, "iris", source="git", log=lambda _l: None)
    with pytest.raises(UsageError, match="git ref"):
        builds.build_project(iris.ctx, "iris", source="home", git_ref="main", log=lambda _l: None)


def test_failed_install_reports_the_installer_and_leaves_no_env(
    iris: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _project(iris, tmp_path, "iris-broken")
    (src / "requirements.txt").write_text("atoll-test-no-such-package-zz==9.9.9\n")
    monkeypatch.setenv("UV_OFFLINE", "1")  # fail without asking any index
    envs = iris.home / "envs"
    before = set(envs.iterdir())
    with pytest.raises(ExecutionError, match="atoll-test-no-such-package-zz") as failure:
        builds.build_project(iris.ctx, "iris-broken", source="home", log=lambda _l: None)
    assert "failed" in str(failure.value)
    assert {p for p in envs.iterdir() if not p.name.endswith(".lock")} == {
        p for p in before if not p.name.endswith(".lock")
    }
    assert not iris.ctx.metadata.exists(BuildVersion, "latest", "iris-broken")


def test_removing_a_build_keeps_snapshots_still_in_use(iris: Any, tmp_path: Path) -> None:
    from atoll.api.records import remove_record
    from atoll.domain.records import Training

    _project(iris, tmp_path, "iris-rm")
    one = builds.build_project(iris.ctx, "iris-rm", tag="one", source="home", log=lambda _l: None)
    two = builds.build_project(iris.ctx, "iris-rm", tag="two", source="home", log=lambda _l: None)
    assert one.location == two.location  # same code, one snapshot
    remove_record(iris.ctx, BuildVersion, "one", "iris-rm")
    assert Path(two.location or "").is_dir(), "tag two still needs the snapshot"
    iris.ctx.metadata.create(Training(name="used", proj="iris-rm", notebook="notebooks/train.ipynb", bvers=two))
    remove_record(iris.ctx, BuildVersion, "two", "iris-rm")
    assert Path(two.location or "").is_dir(), "a training still refers to the snapshot"
    iris.ctx.metadata.delete(Training, "used", "iris-rm")
    three = builds.build_project(iris.ctx, "iris-rm", tag="three", source="home", log=lambda _l: None)
    remove_record(iris.ctx, BuildVersion, "three", "iris-rm")
    assert not Path(three.location or "").exists()
    assert Path(three.details["env_dir"]).is_dir(), "environments are a shared cache"


def test_a_hanging_installer_step_is_stopped_and_says_what_it_was_doing() -> None:
    from atoll.containers.local.build import _run

    lines: list[str] = []
    with pytest.raises(ExecutionError, match=r"did not finish within 0.5s .*last line: Resolving zz-package") as info:
        _run(["sh", "-c", "echo 'Resolving zz-package'; exec sleep 30"], lines.append, "installing", timeout=0.5)
    assert lines == ["Resolving zz-package"] and "Resolving zz-package" in info.value.log_tail
