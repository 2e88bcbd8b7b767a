"""A throwaway Docker registry for tests: Debian's ``docker-registry`` as a process on a free loopback port.

The engine trusts 127.0.0.0/8 registries without TLS, so builds push to it and
nodes (or the test kubelet's engine) pull from it as from a real registry.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.processes import free_port

REGISTRY = shutil.which("docker-registry") or "/usr/bin/docker-registry"


@contextlib.contextmanager
def serve_registry(tmp_path: Path, htpasswd: Path | None = None) -> Iterator[str]:
    """``127.0.0.1:<port>`` of a throwaway registry (stopped by PID afterwards); basic auth with ``htpasswd``."""
    if not Path(REGISTRY).exists():
        if os.environ.get("ATOLL_REQUIRE_DOCKER") == "1":
            pytest.fail("docker-registry is not installed (apt-get install docker-registry)", pytrace=False)
        pytest.skip("docker-registry is not installed (apt-get install docker-registry)")
    port = free_port()
    config = tmp_path / "registry.yml"
    auth = f"auth:\n  htpasswd:\n    realm: atoll-test\n    path: {htpasswd}\n" if htpasswd else ""
    config.write_text(
        f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n{auth}"
    )
    with open(tmp_path / "registry.log", "wb") as log:
        proc = subprocess.Popen([REGISTRY, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1):
                    break
            except urllib.error.HTTPError as exc:
                if exc.code == 401 and htpasswd:  # up, and asking for credentials
                    break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"the registry did not start: {(tmp_path / 'registry.log').read_text()}")
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


__all__ = ["REGISTRY", "serve_registry"]
