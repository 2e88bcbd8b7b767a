"""What lets a request through to a replica: API keys, and the replicas' shared secret.

API keys are checked by the router and by a local deployment's ``--port``
balancer (one copy, here, below both): ``Authorization: Bearer <key>`` on
every forwarded request.

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

The replica secret: every deployment has a random secret of its own, handed
to its replicas with the task's store settings (:mod:`atoll.task.stores`) and
to the router in ``replica-secrets.json`` next to the keys file
(:class:`ReplicaSecretsFile`); the router and the balancer send it as
``x-atoll-replica-secret`` (never the client's copy of that header), and a
replica that has one answers 403 to any request without it but ``/health``
and ``/metrics``.
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
#: The header carrying a deployment's replica secret from the router/balancer to its replicas.
REPLICA_SECRET_HEADER = b"x-atoll-replica-secret"
#: Paths a replica answers without the secret (probes and monitoring, no prediction).
OPEN_PATHS = frozenset({"/health", "/metrics"})
_SHOWN_CHARS = 12  # same as atoll.api.keys.SHOWN_CHARS (_http imports nothing of the API)


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


def with_replica_secret(headers: Headers, secret: bytes | None) -> Headers:
    """``headers`` to forward to a replica: the client's ``x-atoll-replica-secret`` dropped, ``secret`` added."""
    out = [h for h in headers if h[0] != REPLICA_SECRET_HEADER]
    if secret:
        out.append((REPLICA_SECRET_HEADER, secret))
    return out


def replica_secret_matches(headers: Headers, secret: bytes) -> bool:
    """True when ``headers`` carry ``secret`` as ``x-atoll-replica-secret`` (compared in constant time)."""
    for name, value in headers:
        if name == REPLICA_SECRET_HEADER:
            return hmac.compare_digest(value, secret)
    return False


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


class ReplicaSecretsFile:
    """The replica secret of each deployment, from a JSON file written by ``atoll depl new/rm``::

        {"version": 1, "secrets": {"<project>/<deployment>": "<secret>"}}

    Re-read like the keys file when it changes. A deployment without an entry
    (or a missing file) gets no secret: its replicas then refuse the request,
    unless they were started without one.

    Args:
        path: the file (None: no secrets at all).
        recheck: seconds during which the loaded secrets are trusted without a ``stat``.
    """

    def __init__(self, path: str | os.PathLike[str] | None, recheck: float = 0.5) -> None:
        self.path = Path(path) if path else None
        self.recheck = recheck
        self._secrets: dict[str, bytes] = {}
        self._stamp: tuple[int, int, int] | None = None
        self._checked = float("-inf")
        self._failed: str | None = None

    def secret(self, project: str, deployment: str) -> bytes | None:
        """The secret of ``project``/``deployment``, None when it has none."""
        if self.path is None:
            return None
        now = time.monotonic()
        if now - self._checked >= self.recheck:
            self._checked = now
            self._refresh()
        return self._secrets.get(f"{project}/{deployment}")

    def _refresh(self) -> None:
        assert self.path is not None
        try:
            st = os.stat(self.path)
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            if stamp == self._stamp:
                return
            data = orjson.loads(self.path.read_bytes())
            if data.get("version") != 1:
                raise ValueError(f"unknown version {data.get('version')!r}")
            secrets = {str(k): str(v).encode() for k, v in data["secrets"].items()}
        except FileNotFoundError:
            stamp, secrets = None, {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            message = f"the replica secrets file {self.path} is unreadable: {exc}"
            if message != self._failed:
                logger.warning("%s: forwarding without replica secrets", message)
            self._secrets, self._stamp, self._failed = {}, None, message
            return
        self._secrets, self._stamp, self._failed = secrets, stamp, None


__all__ = [
    "OPEN_PATHS",
    "REPLICA_SECRET_HEADER",
    "Forbidden",
    "KeyFileAuth",
    "OpenAccess",
    "ReplicaSecretsFile",
    "Unauthorized",
    "replica_secret_matches",
    "with_replica_secret",
    "without_authorization",
]
