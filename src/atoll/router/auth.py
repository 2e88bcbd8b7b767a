"""The router's API-key checks: they live in :mod:`atoll._http.keys`, shared with the local balancer."""

from __future__ import annotations

from atoll._http.keys import (
    Forbidden,
    KeyFileAuth,
    OpenAccess,
    ReplicaSecretsFile,
    Unauthorized,
    with_replica_secret,
    without_authorization,
)

__all__ = [
    "Forbidden",
    "KeyFileAuth",
    "OpenAccess",
    "ReplicaSecretsFile",
    "Unauthorized",
    "with_replica_secret",
    "without_authorization",
]
