"""Credentials: treasure chests, their encryption at rest, and the island chests.

Secrets are encrypted with one local Fernet key. The key lives in
``$ATOLL_HOME/secret.key``, is created on first use with mode 0600, and is
refused when group or others can read it. Only the off-board side needs it:
tasks receive already-decrypted store settings (see :mod:`atoll.backends`),
never the key.

One rule for where chests live: **every treasure chest is kept in the chest
store**, the embedded store of ``ATOLL_HOME`` (``sqlite:///<home>/atoll.db``,
:func:`home_store`), whatever ``metadata.url`` says. The configured metadata
store cannot hold the credentials needed to open it (``metadata.tchest``, the
db island's password), the key that decrypts chests is in ``ATOLL_HOME`` too,
and so ``atoll tchest`` never needs the configured store to open: a chest can
be made before or after ``atoll.yaml`` names it. Island chests are generated
on the first setup (:func:`home_chest`).

Earlier versions kept user-made chests in the configured metadata store; they
are still read from there when the chest store lacks them (:func:`read_chest`
with ``fallback``), and ``atoll tchest import`` moves them.
"""

from __future__ import annotations

import os
import secrets
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from atoll.config import Config, atoll_home
from atoll.domain.records import TreasureChest
from atoll.errors import AlreadyExistsError, BackendError, ConfigError, NotFoundError
from atoll.metadata.base import MetadataStore, get_metadata_store

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


# Treasure chests.


def open_chest(metadata: MetadataStore, name: str, setting: str) -> tuple[str, str]:
    """``(user, secret)`` of a treasure chest, decrypted; ``setting`` names who asked.

    Raises:
        ConfigError: no such chest.
        BackendError: the secret cannot be decrypted (the key file changed).
    """
    try:
        chest = metadata.get(TreasureChest, name)
    except NotFoundError as exc:
        raise ConfigError(f"{setting}: treasure chest {name!r} does not exist (see `atoll tchest new`)") from exc
    return chest.user, decrypt(chest.secret) if chest.secret else ""


def chest_store_path(config: Config) -> Path:
    """The chest store's file: ``<home>/atoll.db``."""
    return config.home / "atoll.db"


def chest_store_url(config: Config) -> str:
    """``sqlite:///<home>/atoll.db``: where every treasure chest lives."""
    return f"sqlite:///{chest_store_path(config)}"


def read_chest(config: Config, name: str, setting: str, *, fallback: MetadataStore | None = None) -> tuple[str, str]:
    """``(user, secret)`` of the chest ``name`` named by the setting ``setting``.

    Looked up in the chest store (never created by a lookup), then in
    ``fallback`` (the configured metadata store, where earlier versions put
    chests) when given.

    Raises:
        ConfigError: no such chest: one line naming the setting and the fix.
        BackendError: the secret cannot be decrypted (the key file changed).
    """
    if chest_store_path(config).exists():
        with home_store(config) as store:
            if store.exists(TreasureChest, name):
                return open_chest(store, name, setting)
    if fallback is not None and fallback.exists(TreasureChest, name):
        return open_chest(fallback, name, setting)
    raise ConfigError(
        f"{setting}: treasure chest {name!r} does not exist; create it with "
        f"`atoll tchest new --name {name} --user USER --password-stdin` (or unset {setting})"
    )


@contextmanager
def home_store(config: Config) -> Iterator[MetadataStore]:
    """The chest store, the embedded store of ``ATOLL_HOME`` (``sqlite:///<home>/atoll.db``), closed afterwards."""
    store = get_metadata_store(chest_store_url(config))
    try:
        yield store
    finally:
        store.close()


def home_chest(config: Config, name: str, user: str, make_secret: Callable[[], str], desc: str) -> tuple[str, str]:
    """``(user, secret)`` of the island chest ``name`` in the home store, created on first use.

    ``make_secret`` is called only when the chest does not exist yet.
    """
    with home_store(config) as store:
        try:
            return open_chest(store, name, f"the {name} treasure chest")
        except ConfigError:
            pass
        record = TreasureChest(name=name, user=user, secret=encrypt(make_secret()), desc=desc,
                               details={"island": True})
        try:
            store.create(record)
        except AlreadyExistsError:  # a racing setup created it first: use theirs
            pass
        return open_chest(store, name, f"the {name} treasure chest")


def read_home_chest(config: Config, name: str, setting: str, island: str) -> tuple[str, str]:
    """``(user, secret)`` of an existing island chest.

    Raises:
        ConfigError: the island was never set up (so the chest does not exist).
    """
    with home_store(config) as store:
        try:
            return open_chest(store, name, setting)
        except ConfigError as exc:
            raise ConfigError(
                f"{setting}: the {island} island has no credentials yet; run `atoll isle {island} setup`"
            ) from exc


def new_token(nbytes: int = 24) -> str:
    """A random URL-safe token (letters, digits, ``-`` and ``_`` only)."""
    return secrets.token_urlsafe(nbytes)


__all__ = [
    "KEY_FILE",
    "chest_store_path",
    "chest_store_url",
    "decrypt",
    "encrypt",
    "home_chest",
    "home_store",
    "key_path",
    "load_key",
    "new_token",
    "open_chest",
    "read_chest",
    "read_home_chest",
]
