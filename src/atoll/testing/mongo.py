"""MongoDB stand-in for tests: the real :class:`MongoMetadataStore` on ``mongomock``.

No MongoDB server can run on the machines Atoll is tested on, so the store's
own code (queries, indexes, counters, blobs) runs against ``mongomock``, an
in-process emulation of pymongo's client. URLs use the scheme
``mongomock://<name>/<database>``; every store opened with the same
``<name>`` in one process sees the same data (like clients of one server),
so a test can write through one store and read through another. What
mongomock does not prove: wire protocol, authentication, TLS, and the
server's own regex engine.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit

from atoll.metadata.mongo import MongoMetadataStore

try:
    import mongomock
    from mongomock.store import ServerStore
except ImportError as exc:  # pragma: no cover - reported by the registry with the install hint
    raise ImportError(f"the mongomock stand-in needs mongomock (pip install mongomock): {exc}") from exc

_servers: dict[str, ServerStore] = {}
_lock = threading.Lock()


class MongomockMetadataStore(MongoMetadataStore):
    """``mongomock://<server>/<database>``: :class:`MongoMetadataStore` on an in-process server."""

    def __init__(self, url: str = "mongomock://default/atoll", **options: Any) -> None:
        server = urlsplit(url).netloc or "default"
        with _lock:
            store = _servers.setdefault(server, ServerStore())
        super().__init__(url, client=mongomock.MongoClient(_store=store), **options)


def drop_server(name: str) -> None:
    """Forget the in-process server ``name`` (its data goes with it)."""
    with _lock:
        _servers.pop(name, None)


__all__ = ["MongomockMetadataStore", "drop_server"]
