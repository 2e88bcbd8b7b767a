"""What Atoll reads in a project's Dockerfile: Noronha's base image (swarm) and pip installs (local builds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from atoll.config import Config
from atoll.containers.dockerfile import check_noronha_base, local_installs, map_noronha_base, noronha_bases
from atoll.containers.local import build as local_build
from atoll.errors import UsageError

NORONHA_IRIS = Path(__file__).resolve().parents[2] / "examples" / "noronha-iris"


def _config(**section: object) -> Config:
    return Config.model_validate({"container_manager": section})


def test_noronhas_base_image_in_any_spelling_builds_on_atolls() -> None:
    text = (NORONHA_IRIS / "Dockerfile").read_text()
    assert noronha_bases(text) == ["noronhadataops/noronha:latest"]
    mapped = map_noronha_base(text, "atoll/base:0.1.0")
    # Noronha's image built as root: the mapped stage does too, and the image ends as Atoll's task user.
    assert "\nFROM atoll/base:0.1.0\nUSER root\n" in mapped
    assert mapped.endswith("\nUSER 10001:10001\n")
    unmapped = mapped.replace("FROM atoll/base:0.1.0\nUSER root\n", "FROM noronhadataops/noronha:latest\n")
    assert unmapped.removesuffix("USER 10001:10001\n") == text  # nothing else
    staged = "from --platform=linux/amd64 docker.io/noronhadataops/noronha AS base\nFROM base\n"
    assert map_noronha_base(staged, "B") == (
        "from --platform=linux/amd64 B AS base\nUSER root\nFROM base\nUSER 10001:10001\n")
    own_user = "FROM noronhadataops/noronha\nUSER 1234\n"
    assert map_noronha_base(own_user, "B") == "FROM B\nUSER root\nUSER 1234\n"  # the Dockerfile's own USER stands
    for other in ("FROM noronhadataops/noronha-extra:1\n", "FROM someone/noronha:1\n", "FROM python:3.11\n"):
        assert noronha_bases(other) == [] and map_noronha_base(other, "B") == other


def test_with_the_compatibility_off_noronhas_base_image_is_refused() -> None:
    text = "FROM noronhadataops/noronha:2.0\nADD . ${APP_HOME}\n"
    assert check_noronha_base(text, _config()) == ["noronhadataops/noronha:2.0"]
    with pytest.raises(UsageError, match=r"FROM noronhadataops/noronha:2.0.*noronha_compat is off.*ATOLL_BASE_IMAGE"):
        check_noronha_base(text, _config(noronha_compat=False))
    assert check_noronha_base("ARG ATOLL_BASE_IMAGE\nFROM ${ATOLL_BASE_IMAGE}\n", _config(noronha_compat=False)) == []


def test_the_local_runtime_takes_the_pip_installs_of_run_lines(tmp_path: Path) -> None:
    assert local_installs((NORONHA_IRIS / "Dockerfile").read_text(), NORONHA_IRIS).requirement_files == [
        "requirements.txt"
    ]
    (tmp_path / "extra.txt").write_text("numpy\n")
    text = (
        "FROM noronhadataops/noronha\n"
        "ENV MODE=fast\n"
        "RUN apt-get update \\\n"
        "    # a comment inside the instruction\n"
        " && apt-get install -y gcc\n"
        'RUN ["bash", "-c", "source $CONDA_HOME/bin/activate py3 && pip install --no-cache-dir -U '
        "'pandas>=2' -r ${APP_HOME}/extra.txt -r /tmp/elsewhere.txt\"]\n"
        "RUN python3 -m pip install -i http://mirror/simple scipy && pip install -e .\n"
    )
    found = local_installs(text, tmp_path)
    assert found.requirement_files == ["extra.txt"]
    assert found.packages == ["pandas>=2", "scipy"]
    assert found.not_done == [
        "line 2: ENV MODE=fast",
        "line 3: apt-get update",
        "line 3: apt-get install -y gcc",
        "line 6: pip install -r /tmp/elsewhere.txt (not a file of the project)",
        "line 7: pip install -i http://mirror/simple",
        "line 7: pip install -e .",
    ]


def test_a_local_build_installs_what_the_dockerfile_adds_and_keeps_the_key_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATOLL_HOME", str(tmp_path / "home"))
    installed: list[tuple[list[str], list[str]]] = []

    def fake_create_env(tmp: Path, requirements: list[Path], packages: list[str], log: object) -> str:
        installed.append(([p.name for p in requirements], packages))
        (tmp / "lib" / "python3" / "site-packages").mkdir(parents=True)
        return "fake"

    monkeypatch.setattr(local_build, "_create_env", fake_create_env)
    project = tmp_path / "proj"
    project.mkdir()
    (project / "requirements.txt").write_text("scikit-learn\n")
    plain_key, _, _ = local_build.ensure_env(project, False, lambda _line: None)
    (project / "Dockerfile").write_text((NORONHA_IRIS / "Dockerfile").read_text())
    lines: list[str] = []
    noronha_key, env_dir, reused = local_build.ensure_env(project, False, lines.append)
    assert (noronha_key, reused) == (plain_key, True)  # pip install -r requirements.txt: what it installs anyway
    assert (env_dir / "atoll-src" / "noronha" / "tools" / "shortcuts.py").is_file()
    (project / "Dockerfile").write_text("FROM noronhadataops/noronha\nRUN pip install -r requirements.txt joblib\n"
                                        "RUN apt-get install -y gcc\n")
    lines.clear()
    key, _, reused = local_build.ensure_env(project, False, lines.append)
    assert key != plain_key and not reused
    assert installed == [(["requirements.txt"], []), (["requirements.txt"], ["joblib"])]
    assert "Dockerfile line 3: apt-get install -y gcc: not run by the local runtime" in lines[0]
