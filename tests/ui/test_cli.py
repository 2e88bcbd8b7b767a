"""``atoll ui`` and ``atoll isle ui setup|status|stop`` as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from support.processes import free_port, processes_of

ATOLL = Path(sys.executable).parent / "atoll"


def _env(home: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "ATOLL_HOME": str(home), **extra}


def test_atoll_ui_prints_a_token_url_and_refuses_requests_without_it(tmp_path: Path) -> None:
    proc = subprocess.Popen([str(ATOLL), "ui", "--port", "0"], env=_env(tmp_path / "home"), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("Atoll UI: http://127.0.0.1:"), line
        url = line.split(": ", 1)[1].strip()
        base = url.split("/?token=")[0]
        assert httpx.get(f"{base}/models", timeout=10).status_code == 401
        with httpx.Client(timeout=10, follow_redirects=True) as browser:
            page = browser.get(url)
            assert page.status_code == 200 and "Projects" in page.text
            assert browser.get(f"{base}/models", headers={"Accept": "application/json"}).json() == {"models": []}
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)


def test_a_taken_port_is_one_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = subprocess.run([str(ATOLL), "ui", "--port", str(port)], env=_env(tmp_path / "home"), cwd=tmp_path,
                              capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"error: cannot listen on 127.0.0.1:{port}: Address already in use"]


def test_the_ui_island_runs_in_the_background_until_stopped(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = _env(home, ATOLL_UI__PORT=str(free_port()))

    def isle(action: str) -> dict[str, object]:
        done = subprocess.run([str(ATOLL), "-o", "json", "isle", "ui", action], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    try:
        started = isle("setup")
        assert started["running"] is True
        assert (home / "run" / "ui.json").stat().st_mode & 0o777 == 0o600
        url = str(started["url"])
        base, token = url.split("/?token=")
        assert httpx.get(f"{base}/", timeout=10).status_code == 401
        assert httpx.get(f"{base}/", headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code == 200
        assert token not in " ".join(Path(f"/proc/{started['pid']}/cmdline").read_text().split("\0"))
        again = isle("setup")
        assert again["pid"] == started["pid"] and "already running" in str(again["message"])
        assert isle("status")["url"] == url
        assert isle("stop")["running"] is False
        assert isle("status")["running"] is False
        assert processes_of(home) == []
    finally:
        subprocess.run([str(ATOLL), "isle", "ui", "stop"], env=env, cwd=tmp_path, capture_output=True, timeout=60, check=False)


def test_without_the_ui_extra_the_error_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from atoll import ui
    from atoll.errors import ConfigError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "starlette" else real(name, *a))
    with pytest.raises(ConfigError, match=r"the UI needs starlette: pip install 'atoll\[ui\]'"):
        ui.require_dependencies()
