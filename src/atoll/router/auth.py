"""API-key checks of the router: ``Authorization: Bearer <key>`` on every forwarded request.

The keys come from a JSON file written by ``atoll key new/rm`` (see
:mod:`atoll.api.keys`)::

    {"version": 1, "pepper": "<hex>",
     "keys": [{"name", "proj", "deploy" (null: all), "expires" (epoch s or null),
               "prefix", "hash" (hex HMAC-SHA256 of the key under the pepper)}]}

It is re-read when its inode, mtime or size changes (checked at most every
``recheck`` seconds), so a revoked key stops working within about a second
and a busy route costs no syscall per request. A missing or unreadable file
lets no key through (fail closed).

Answers: 401 when the header is missing or the key unknown, 403 when the key
is for another project or deployment, or expired. Hashes are compared with
:func:`hmac.compare_digest`. The ``Authorization`` header is never forwarded
to a replica, whether auth is on or off.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
from pathlib import Path
from typing import NamedTuple

import orjson

from atoll.errors import AtollError

logger = logging.getLogger(__name__)

Headers = list[tuple[bytes, bytes]]
_AUTHORIZATION = b"authorization"
_SHOWN_CHARS = 12  # same as atoll.api.keys.SHOWN_CHARS (the router imports no off-board code)


class Unauthorized(AtollError):
    """No key, or a key the router does not know (HTTP 401)."""

    http_status = 401


class Forbidden(AtollError):
    """A valid key that does not open this deployment, or an expired one (HTTP 403)."""

    http_status = 403


class _Key(NamedTuple):
    name: str
    proj: str
    deploy: str | None
    expires: float | None
    digest: bytes


def without_authorization(headers: Headers) -> Headers:
    """``headers`` minus Authorization (the same list when there is none: the common case)."""
    for name, _ in headers:
        if name == _AUTHORIZATION:
            return [h for h in headers if h[0] != _AUTHORIZATION]
    return headers


class OpenAccess:
    """``router.auth: off``: every request passes; Authorization is still not forwarded."""

    def check(self, target: tuple[str, str], headers: Headers) -> Headers:
        return without_authorization(headers)


class KeyFileAuth:
    """Checks bearer keys against a keys file.

    Args:
        path: the keys file.
        recheck: seconds during which the loaded keys are trusted without a ``stat``.
    """

    def __init__(self, path: str | os.PathLike[str], recheck: float = 0.5) -> None:
        self.path = Path(path)
        self.recheck = recheck
        self._pepper = b""
        self._by_prefix: dict[bytes, list[_Key]] = {}
        self._stamp: tuple[int, int, int] | None = None
        self._checked = float("-inf")
        self._failed: str | None = None

    def check(self, target: tuple[str, str], headers: Headers) -> Headers:
        """The headers to forward when the request's key opens ``target`` (project, deployment).

        Raises:
            Unauthorized: no bearer key, or an unknown one.
            Forbidden: the key is for another project/deployment, or expired.
        """
        raw = None
        for name, value in headers:
            if name == _AUTHORIZATION:
                raw = value
                break
        if raw is None:
            raise Unauthorized("missing API key: send 'Authorization: Bearer <key>' (atoll key new)")
        scheme, _, key = raw.strip().partition(b" ")
        key = key.strip()
        if scheme.lower() != b"bearer" or not key:
            raise Unauthorized("malformed Authorization header: use 'Bearer <key>'")
        self._refresh()
        digest = hmac.new(self._pepper, key, hashlib.sha256).digest()
        found = None
        for entry in self._by_prefix.get(key[:_SHOWN_CHARS], ()):
            if hmac.compare_digest(digest, entry.digest):
                found = entry
        if found is None:
            raise Unauthorized("unknown or revoked API key")
        project, deployment = target
        if found.proj != project or (found.deploy is not None and found.deploy != deployment):
            scope = found.proj + (f"/{found.deploy}" if found.deploy else "")
            raise Forbidden(f"API key {found.name!r} is for {scope}, not {project}/{deployment}")
        if found.expires is not None and found.expires <= time.time():
            raise Forbidden(f"API key {found.name!r} has expired")
        return without_authorization(headers)

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < self.recheck:
            return
        self._checked = now
        try:
            st = os.stat(self.path)
        except OSError as exc:
            self._load_failed(f"cannot read {self.path}: {exc.strerror}")
            return
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        try:
            data = orjson.loads(self.path.read_bytes())
            if data.get("version") != 1:
                raise ValueError(f"unknown version {data.get('version')!r}")
            pepper = bytes.fromhex(data["pepper"])
            by_prefix: dict[bytes, list[_Key]] = {}
            for item in data["keys"]:
                entry = _Key(str(item["name"]), str(item["proj"]), item.get("deploy"),
                             item.get("expires"), bytes.fromhex(item["hash"]))
                by_prefix.setdefault(str(item["prefix"]).encode(), []).append(entry)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            self._load_failed(f"the keys file {self.path} is unreadable: {exc}")
            return
        self._pepper, self._by_prefix, self._stamp, self._failed = pepper, by_prefix, stamp, None
        logger.info("loaded %d API key(s) from %s", sum(map(len, by_prefix.values())), self.path)

    def _load_failed(self, message: str) -> None:
        if message != self._failed:  # once per new problem, not once per request
            logger.warning("%s: refusing every key until it is readable", message)
        self._pepper, self._by_prefix, self._stamp, self._failed = b"", {}, None, message


__all__ = ["Forbidden", "KeyFileAuth", "OpenAccess", "Unauthorized", "without_authorization"]
