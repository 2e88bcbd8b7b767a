"""``note --edit`` on swarm never runs Jupyter as root unless ``--allow-root`` says so (Jupyter's own rule).

The container would run as the owner of the project directory; when that is root,
``note`` refuses before anything starts: no engine is asked (the daemon address
given here answers nothing), nothing is staged.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def swarm(atoll, tmp_path: Path):
    atoll.env.update({"ATOLL_CONTAINER_MANAGER__TYPE": "swarm",
                      "ATOLL_DOCKER__DAEMON_ADDRESS": f"unix://{tmp_path}/no-daemon.sock"})
    return atoll


def _root_owned(tmp_path: Path) -> Path:
    """A directory root owns: a fresh one when the tests run as root, else ``/``."""
    if os.geteuid() == 0:
        found = tmp_path / "project"
        found.mkdir()
    else:
        found = Path("/")
    if found.stat().st_uid != 0:
        pytest.skip(f"{found} is not owned by root here")
    return found


def test_editing_a_directory_root_owns_is_refused_unless_allow_root(swarm, tmp_path: Path) -> None:
    project = _root_owned(tmp_path)
    swarm.ok("proj", "new", "-n", "demo", "--home-dir", str(project))
    line = swarm.fails(2, "note", "--proj", "demo", "--edit")
    assert line == (f"error: Jupyter would run as root ({project} belongs to root): give it to a user "
                    f"(`chown -R USER {project}`) or pass --allow-root")
    assert not (swarm.home / "tasks" / "demo").exists()  # nothing staged
    # Past the check, the next thing wanted is the build this test never made.
    missing = "error: project demo has no build 'latest'; run `atoll proj build --tag latest`"
    assert swarm.fails(1, "note", "--proj", "demo", "--edit", "--allow-root") == missing
    if os.geteuid() == 0:  # a directory a user owns: that user runs Jupyter, nothing to allow
        os.chown(project, 4321, 4321)
        assert swarm.fails(1, "note", "--proj", "demo", "--edit") == missing
