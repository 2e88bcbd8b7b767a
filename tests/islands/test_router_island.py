"""The local router island: a real supervisor keeping a real router process running, and HTTPS."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from atoll.api.context import AtollContext
from atoll.api.deployments import router_down
from atoll.config import Config
from atoll.islands.router import RESTART_LIMIT, LocalRouterIsland
from support.processes import atoll_home, free_port, processes_of, wait_for

pytestmark = pytest.mark.slow
ATOLL = Path(sys.executable).parent / "atoll"


def _island(port: int) -> LocalRouterIsland:
    return LocalRouterIsland(Config.model_validate({"router": {"port": port, "auth": False}}))


def _hold(port: int) -> socket.socket:
    """Listen on ``port`` ourselves, so a router started on it exits at once."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


def test_a_sigkilled_router_is_restarted_reported_down_meanwhile_and_given_up_on(home: Path) -> None:
    port = free_port()
    island = _island(port)
    with atoll_home(home):
        try:
            first = island.setup()
            assert first.running and first.url == f"http://127.0.0.1:{port}"
            assert first.pid is not None
            os.kill(first.pid, signal.SIGKILL)
            again = wait_for(lambda: (s := island.status()).running and s.pid != first.pid and s, timeout=10)
            assert httpx.get(f"{again.url}/health", timeout=5).status_code == 200
            assert router_down(AtollContext(island.config)) is None

            # Killed again while something else took its port: every restart fails until the
            # supervisor gives up; meanwhile the status says down, with no URL to offer.
            os.kill(again.pid, signal.SIGKILL)
            held = wait_for(lambda: _try_hold(port), timeout=5)
            try:
                down = wait_for(lambda: (s := island.status()).health == "down" and s, timeout=10)
                assert not down.running and down.url is None
                why = router_down(AtollContext(island.config))
                assert why is not None and "the router is down" in why
                gave_up = wait_for(lambda: "gave up" in (s := island.status()).message and s, timeout=60)
                assert not gave_up.running and gave_up.health == "down"
                assert f"gave up after {RESTART_LIMIT} restart(s) in a row" in gave_up.message
                assert "exited with code" in gave_up.message and "isle router setup" in gave_up.message
                assert processes_of(home) == []  # the supervisor is gone too: bounded
            finally:
                held.close()
            back = island.setup()  # starts it afresh
            assert back.running and httpx.get(f"{back.url}/health", timeout=5).status_code == 200
        finally:
            stopped = island.stop()
        assert stopped.message == "the router was stopped"
        assert processes_of(home) == []  # `stop` ends the supervisor and the router


def _try_hold(port: int) -> socket.socket | None:
    try:
        return _hold(port)
    except OSError:
        return None


def test_setup_self_signed_serves_https_and_prints_the_certificate_path(home: Path) -> None:
    port = free_port()
    env = {**os.environ, "ATOLL_HOME": str(home), "ATOLL_ROUTER__PORT": str(port), "ATOLL_ROUTER__AUTH": "off"}

    def atoll(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(ATOLL), *args], check=False, env=env, capture_output=True, text=True,
                              timeout=120)

    with atoll_home(home):
        try:
            plain = atoll("isle", "router", "setup")
            assert plain.returncode == 0, plain.stderr
            assert f"http://127.0.0.1:{port}" in plain.stdout
            secure = atoll("-o", "json", "isle", "router", "setup", "--self-signed")  # re-started with TLS
            assert secure.returncode == 0, secure.stderr
            cert, key = home / "tls" / "router.crt", home / "tls" / "router.key"
            result = json.loads(secure.stdout)
            assert result["url"] == f"https://127.0.0.1:{port}" and result["running"]
            assert f"clients trust its certificate {cert} (curl --cacert)" in result["message"]
            assert os.stat(key).st_mode & 0o777 == 0o600
            pem = key.read_text().splitlines()[1]
            assert pem not in secure.stdout + secure.stderr  # the key is never printed
            settings = yaml.safe_load((home / "atoll.yaml").read_text())
            assert settings["router"] == {"tls_cert": str(cert), "tls_key": str(key)}
            assert httpx.get(f"https://127.0.0.1:{port}/health", verify=str(cert), timeout=5).status_code == 200
            status = atoll("isle", "router", "status")
            assert f"https://127.0.0.1:{port}" in status.stdout and "healthy" in status.stdout
            # Killed, it comes back over TLS (the supervisor's health check speaks TLS too).
            pid = int(next(line.split()[1] for line in status.stdout.splitlines() if line.startswith("pid")))
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: _https_ok(port, cert), timeout=10)
            wrong = atoll("isle", "db", "setup", "--self-signed")
            assert wrong.returncode == 2 and "--self-signed goes with" in wrong.stderr
        finally:
            stop = atoll("isle", "router", "stop")
        assert stop.returncode == 0 and "stopped" in stop.stdout


def _https_ok(port: int, cert: Path) -> bool:
    try:
        return httpx.get(f"https://127.0.0.1:{port}/health", verify=str(cert), timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_a_new_pair_behind_the_same_paths_restarts_the_router_with_it(home: Path) -> None:
    from atoll.islands.router_tls import self_signed_pair

    cert, key, _ = self_signed_pair(home, "127.0.0.1")
    port = free_port()
    island = LocalRouterIsland(Config.model_validate(
        {"router": {"port": port, "auth": False, "tls_cert": str(cert), "tls_key": str(key)}}))
    with atoll_home(home):
        try:
            first = island.setup()
            assert first.url == f"https://127.0.0.1:{port}"
            assert "already running" in island.setup().message
            old = cert.read_bytes()
            assert self_signed_pair(home, "router.internal")[2]  # a new pair, same paths
            assert "already running" not in island.setup().message
            served = ssl.get_server_certificate(("127.0.0.1", port))
            assert served.strip() == cert.read_text().strip() != old.decode().strip()
        finally:
            island.stop()
