"""Encryption of treasure-chest secrets with one local Fernet key.

The key lives in ``$ATOLL_HOME/secret.key``, is created on first use with
mode 0600, and is refused when group or others can read it. Only the
off-board side needs it: tasks receive already-decrypted store settings
(see :mod:`atoll.backends`), never the key.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from atoll.config import atoll_home
from atoll.errors import BackendError, ConfigError

KEY_FILE = "secret.key"
_WAIT_FOR_WRITER = 5.0  # seconds another process may take to finish writing a new key


def key_path() -> Path:
    """Where the key is kept: ``$ATOLL_HOME/secret.key``."""
    return atoll_home() / KEY_FILE


def encrypt(text: str) -> str:
    """Encrypt ``text``; the token is URL-safe text, different on every call."""
    return _fernet().encrypt(text.encode()).decode("ascii")


def decrypt(token: str) -> str:
    """Decrypt a token made by :func:`encrypt` with the same key.

    Raises:
        BackendError: the token was made with another key (or altered).
    """
    try:
        return _fernet().decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeError) as exc:
        raise BackendError("cannot decrypt treasure chest: the key file changed?") from exc


def _fernet() -> Fernet:
    return Fernet(load_key())


def load_key(path: Path | None = None) -> bytes:
    """Read the key, creating it on first use.

    Raises:
        ConfigError: the key file is readable by group or others (the
            message gives the ``chmod`` fix), unreadable, or not a valid key.
    """
    path = path or key_path()
    if not path.exists():
        _create_key(path)
    return _read_key(path)


def _create_key(path: Path) -> None:
    """Create the key file exactly once, even with racing processes.

    The key is written to a private temporary file which is then hard-linked
    to its final name: ``link`` fails when the name exists, so the first
    writer wins and the others read its complete key.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(f"cannot create {path.parent}: {exc.strerror}") from exc
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, Fernet.generate_key())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won the race: use its key
        except OSError:  # no hard links on this filesystem: exclusive create instead
            _create_key_exclusive(path)
    except OSError as exc:
        raise ConfigError(f"cannot create the key file {path}: {exc.strerror}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def _create_key_exclusive(path: Path) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    try:
        os.write(fd, Fernet.generate_key())
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_key(path: Path) -> bytes:
    deadline = time.monotonic() + _WAIT_FOR_WRITER
    while True:
        try:
            mode = path.stat().st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise ConfigError(
                    f"the key file {path} is accessible by group or others "
                    f"(mode {stat.S_IMODE(mode):o}); fix it with: chmod 600 {path}"
                )
            key = path.read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the key file {path}: {exc.strerror}") from exc
        try:
            Fernet(key)
        except ValueError as exc:
            if not key and time.monotonic() < deadline:  # only the no-hard-link fallback shows this
                time.sleep(0.05)
                continue
            raise ConfigError(f"the key file {path} does not hold a valid key") from exc
        return key
