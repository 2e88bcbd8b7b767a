"""Island credentials: treasure chests in the embedded store of ``ATOLL_HOME``.

The db island's password and the files island's key pair are generated on the
first setup and kept as treasure chests (secret encrypted with
:mod:`atoll.secrets`) in ``sqlite:///<home>/atoll.db``, never in the
configured metadata store: that store may be the db island itself, whose
password must be known before it can be opened (``metadata.tchest`` is looked
up in the same place for the same reason).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from atoll.config import Config
from atoll.domain.records import TreasureChest
from atoll.errors import AlreadyExistsError, ConfigError


def home_chest(config: Config, name: str, user: str, make_secret: Callable[[], str], desc: str) -> tuple[str, str]:
    """``(user, secret)`` of the island chest ``name`` in the embedded store, created on first use.

    ``make_secret`` is called only when the chest does not exist yet.
    """
    from atoll.backends import open_chest
    from atoll.metadata.base import get_metadata_store
    from atoll.secrets import encrypt

    store = get_metadata_store(f"sqlite:///{config.home / 'atoll.db'}")
    try:
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
    finally:
        store.close()


def read_home_chest(config: Config, name: str, setting: str, island: str) -> tuple[str, str]:
    """``(user, secret)`` of an existing island chest.

    Raises:
        ConfigError: the island was never set up (so the chest does not exist).
    """
    from atoll.backends import open_chest
    from atoll.metadata.base import get_metadata_store

    store = get_metadata_store(f"sqlite:///{config.home / 'atoll.db'}")
    try:
        return open_chest(store, name, setting)
    except ConfigError as exc:
        raise ConfigError(f"{setting}: the {island} island has no credentials yet; run `atoll isle {island} setup`") from exc
    finally:
        store.close()


def new_token(nbytes: int = 24) -> str:
    """A random URL-safe token (letters, digits, ``-`` and ``_`` only)."""
    return secrets.token_urlsafe(nbytes)


__all__ = ["home_chest", "new_token", "read_home_chest"]
