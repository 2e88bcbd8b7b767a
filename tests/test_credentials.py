"""Treasure-chest encryption (atoll.credentials): one private key per ATOLL_HOME."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from atoll import credentials
from atoll.errors import BackendError, ConfigError


def test_key_file_is_created_on_first_use_with_mode_0600(home: Path) -> None:
    assert not (home / "secret.key").exists()
    credentials.encrypt("x")
    key = home / "secret.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert [p.name for p in home.iterdir()] == ["secret.key"]  # no temporary left behind


def test_round_trip_and_token_hides_the_text(home: Path) -> None:
    token = credentials.encrypt("s3cr3t-päss")
    assert "s3cr3t" not in token and token != "s3cr3t-päss"
    assert credentials.encrypt("s3cr3t-päss") != token  # fresh IV each time
    assert credentials.decrypt(token) == "s3cr3t-päss"


def test_group_readable_key_is_refused_with_the_fix(home: Path) -> None:
    credentials.encrypt("x")
    key = home / "secret.key"
    key.chmod(0o640)
    with pytest.raises(ConfigError) as info:
        credentials.encrypt("x")
    assert f"chmod 600 {key}" in str(info.value)
    assert info.value.exit_code == 2


def test_token_from_another_key_cannot_be_decrypted(home: Path) -> None:
    token = credentials.encrypt("x")
    (home / "secret.key").unlink()  # a new key is made on next use
    with pytest.raises(BackendError, match="cannot decrypt treasure chest: the key file changed"):
        credentials.decrypt(token)


def test_garbage_key_file_is_a_config_error(home: Path) -> None:
    home.mkdir()
    key = home / "secret.key"
    key.write_bytes(b"not a key")
    key.chmod(0o600)
    with pytest.raises(ConfigError, match="does not hold a valid key"):
        credentials.encrypt("x")


def test_a_key_created_meanwhile_by_another_process_wins(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_generate = Fernet.generate_key
    their_key = real_generate()

    def generate_while_another_process_finishes() -> bytes:
        fd = os.open(home / "secret.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, their_key)
        os.close(fd)
        return real_generate()

    monkeypatch.setattr(Fernet, "generate_key", staticmethod(generate_while_another_process_finishes))
    assert credentials.load_key() == their_key
    assert (home / "secret.key").read_bytes() == their_key
    assert [p.name for p in home.iterdir()] == ["secret.key"]


def test_processes_racing_on_first_use_agree_on_one_key(home: Path, tmp_path: Path) -> None:
    go = tmp_path / "go"
    script = textwrap.dedent(
        f"""
        import os, sys, time
        from atoll import credentials  # imported before the start signal, so the processes race
        open(os.path.join({str(tmp_path)!r}, "ready-%d" % os.getpid()), "w").close()
        deadline = time.monotonic() + 30
        while not os.path.exists({str(go)!r}) and time.monotonic() < deadline:
            pass
        token = credentials.encrypt("shared")
        sys.stdout.write(credentials.load_key().decode() + " " + token)
        """
    )
    env = {**os.environ, "ATOLL_HOME": str(home)}
    procs = [
        subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    try:
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("ready-*"))) < len(procs) and time.monotonic() < deadline:
            time.sleep(0.01)
        go.touch()
        outputs = [p.communicate(timeout=60)[0].split() for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert all(p.returncode == 0 for p in procs)
    keys = {out[0] for out in outputs}
    assert len(keys) == 1
    assert (home / "secret.key").read_text().strip() == keys.pop()
    for _key, token in outputs:  # every process's token opens with the one key
        assert credentials.decrypt(token) == "shared"
