"""Discovery for the local container manager: state files on disk.

The local manager writes ``<state_dir>/<project>/<deployment>.json``
atomically (write + rename)::

    {"project": P, "deployment": D,
     "replicas": [{"name": ..., "url": "http://127.0.0.1:PORT", "pid": ..., "state": "healthy"}]}

A file is parsed again only when its inode, mtime or size changed, and is
checked at most every ``recheck`` seconds, so a busy route costs no syscall per
request.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from urllib.parse import urlsplit

import orjson

from atoll.errors import BackendUnavailableError, ConfigError, NotFoundError
from atoll.router.discovery.base import Discovery, Replica


class _Entry:
    __slots__ = ("checked", "replicas", "stamp")

    def __init__(self, stamp: tuple[int, int, int], replicas: list[Replica], checked: float) -> None:
        self.stamp = stamp
        self.replicas = replicas
        self.checked = checked


def _parse(raw: bytes, path: Path) -> list[Replica]:
    """Healthy replicas listed in a state file."""
    try:
        data = orjson.loads(raw)
        entries = data["replicas"]
        replicas = []
        for item in entries:
            if item.get("state") != "healthy":
                continue
            url = urlsplit(item["url"])
            if url.scheme != "http" or not url.hostname or url.port is None:
                raise ValueError(f"replica url {item['url']!r} is not http://host:port")
            replicas.append(Replica(str(item.get("name") or url.netloc), url.hostname, url.port))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BackendUnavailableError(f"the state file {path} is unreadable: {exc}") from exc
    return replicas


class LocalDiscovery(Discovery):
    """Replicas from the local manager's state files.

    Args:
        state_dir: the directory holding ``<project>/<deployment>.json``.
        recheck: seconds during which a file is trusted without a ``stat``.
    """

    def __init__(self, state_dir: str | os.PathLike[str], recheck: float = 0.5) -> None:
        if not state_dir:
            raise ConfigError("the local discovery needs a state directory (--state-dir)")
        self.state_dir = Path(state_dir)
        self.recheck = recheck
        self._cache: dict[tuple[str, str], _Entry] = {}

    async def replicas(self, project: str, deployment: str) -> list[Replica]:
        return self.cached(project, deployment)

    def cached(self, project: str, deployment: str) -> list[Replica]:
        """Reading a small local file never needs to wait: always answers."""
        key = (project, deployment)
        entry = self._cache.get(key)
        now = time.monotonic()
        if entry is not None and now - entry.checked < self.recheck:
            return entry.replicas
        path = self.state_dir / project / f"{deployment}.json"
        try:
            st = os.stat(path)
        except FileNotFoundError:
            self._cache.pop(key, None)
            if not (self.state_dir / project).is_dir():
                raise NotFoundError(f"unknown project {project!r}: it has no deployment here") from None
            raise NotFoundError(f"project {project!r} has no deployment {deployment!r}") from None
        except OSError as exc:
            raise BackendUnavailableError(f"cannot read {path}: {exc.strerror}") from exc
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if entry is not None and entry.stamp == stamp:
            entry.checked = now
            return entry.replicas
        try:
            raw = path.read_bytes()
        except FileNotFoundError:  # removed between stat and read
            self._cache.pop(key, None)
            raise NotFoundError(f"project {project!r} has no deployment {deployment!r}") from None
        except OSError as exc:
            raise BackendUnavailableError(f"cannot read {path}: {exc.strerror}") from exc
        replicas = _parse(raw, path)
        self._cache[key] = _Entry(stamp, replicas, now)
        return replicas


__all__ = ["LocalDiscovery"]
