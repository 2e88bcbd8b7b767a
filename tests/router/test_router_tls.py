"""The router over HTTPS: a real router process with a self-signed pair, real TLS clients."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from router_helpers import healthy, start_replica, write_state

from atoll._http.tls import server_context
from atoll.api.keys import KEY_PREFIX, key_hash
from atoll.errors import ConfigError
from atoll.islands.router_tls import self_signed_pair
from atoll.router.__main__ import main as router_main
from support.processes import free_port

KEY = KEY_PREFIX + "t" * 43
PEPPER = b"p" * 32


class TlsRouter:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, cert: Path, log: Path) -> None:
        self.proc, self.port, self.cert, self.log = proc, port, cert, log
        self.url = f"https://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def tls_router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRouter]:
    tmp = tmp_path_factory.mktemp("tls")
    cert, key, made = self_signed_pair(tmp / "home", "127.0.0.1")
    assert made
    keys_file = tmp / "keys.json"
    keys_file.write_bytes(orjson.dumps({"version": 1, "pepper": PEPPER.hex(), "keys": [
        {"name": "k", "proj": "proj", "deploy": None, "expires": None, "prefix": KEY[:12],
         "hash": key_hash(KEY, PEPPER)}]}))
    replica = start_replica(tmp, "dep-1")
    write_state(tmp / "state", "proj", "dep", [healthy(replica)])
    port = free_port()
    log = tmp / "router.log"
    argv = [sys.executable, "-m", "atoll.router", "--port", str(port), "--state-dir", str(tmp / "state"),
            "--recheck", "0.2", "--keys-file", str(keys_file), "--tls-cert", str(cert), "--tls-key", str(key)]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    router = TlsRouter(proc, port, cert, log)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"{router.url}/health", verify=str(cert), timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
        yield router
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
        replica.stop()


def test_a_prediction_through_the_router_over_tls_with_an_api_key(tls_router: TlsRouter) -> None:
    with httpx.Client(verify=str(tls_router.cert), timeout=10) as client:
        answer = client.post(f"{tls_router.url}/predict?project=proj&deploy=dep", content=b"hello",
                             headers={"authorization": f"Bearer {KEY}"})
        assert answer.status_code == 200
        assert answer.json()["result"] == "hello"
        assert client.post(f"{tls_router.url}/predict?project=proj&deploy=dep", content=b"x").status_code == 401
    # The standard library's client, verifying the host name against the certificate, TLS 1.2 or later.
    context = ssl.create_default_context(cafile=str(tls_router.cert))
    with socket.create_connection(("127.0.0.1", tls_router.port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
        assert conn.version() in ("TLSv1.2", "TLSv1.3")
        conn.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        assert conn.recv(100).startswith(b"HTTP/1.1 200")


def test_plain_http_to_the_tls_port_is_refused(tls_router: TlsRouter) -> None:
    with pytest.raises(httpx.TransportError):
        httpx.post(f"http://127.0.0.1:{tls_router.port}/predict?project=proj&deploy=dep", content=b"x",
                   headers={"authorization": f"Bearer {KEY}"}, timeout=5)
    # ...and the router keeps serving TLS clients.
    assert httpx.get(f"{tls_router.url}/health", verify=str(tls_router.cert), timeout=5).status_code == 200


def test_a_client_trusting_another_ca_fails_verification(tls_router: TlsRouter, tmp_path: Path) -> None:
    other, _key, _ = self_signed_pair(tmp_path, "127.0.0.1")
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{tls_router.url}/health", verify=str(other), timeout=5)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):  # the system's CAs only
        httpx.get(f"{tls_router.url}/health", timeout=5)


def test_tls_below_1_2_is_refused(tls_router: TlsRouter) -> None:
    context = ssl.create_default_context(cafile=str(tls_router.cert))
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    with socket.create_connection(("127.0.0.1", tls_router.port), timeout=5) as raw, \
            pytest.raises((ssl.SSLError, ConnectionResetError)):
        context.wrap_socket(raw, server_hostname="127.0.0.1")


def test_the_self_signed_pair_is_private_reused_and_covers_the_host(tmp_path: Path) -> None:
    cert, key, made = self_signed_pair(tmp_path, "router.internal")
    assert made and os.stat(key).st_mode & 0o777 == 0o600
    assert b"PRIVATE KEY" in key.read_bytes() and b"PRIVATE" not in cert.read_bytes()
    assert self_signed_pair(tmp_path, "router.internal") == (cert, key, False)  # clients' copies stay valid
    assert self_signed_pair(tmp_path, "10.1.2.3")[2]  # another host: a new pair naming it
    server_context(str(cert), str(key))  # loads as a server pair


def test_bad_tls_options_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cert, key, _ = self_signed_pair(tmp_path / "a", "127.0.0.1")
    other_cert, _, _ = self_signed_pair(tmp_path / "b", "127.0.0.1")
    with pytest.raises(ConfigError, match="not a PEM certificate and its private key"):
        server_context(str(other_cert), str(key))
    with pytest.raises(ConfigError, match="no such file"):
        server_context(str(tmp_path / "missing.crt"), str(key))
    base = ["--port", str(free_port()), "--auth", "off", "--state-dir", str(tmp_path)]
    assert router_main([*base, "--tls-cert", str(cert)]) == 2
    assert router_main([*base, "--tls-cert", str(cert), "--tls-key", str(key), "--server", "uvicorn"]) == 2
    err = capsys.readouterr().err
    assert "give both --tls-cert and --tls-key" in err and "raw server only" in err
    assert "Traceback" not in err and "PRIVATE" not in err

