"""API keys: shown once, stored as a keyed hash, exported for the router, revoked with their project."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import orjson
import pytest

from atoll.api import keys, projects
from atoll.api.context import AtollContext
from atoll.domain.records import ApiKey
from atoll.errors import AlreadyExistsError, InvalidNameError, NotFoundError, UsageError
from atoll.router.auth import Forbidden, KeyFileAuth, Unauthorized


def test_a_key_is_returned_once_and_only_its_hash_is_kept(ctx: AtollContext) -> None:
    projects.new_project(ctx, "iris")
    record, key = keys.new_key(ctx, "iris", name="ci", deploy="svc", expires_days=1)
    assert record.name == "ci" and key not in record.model_dump_json()
    assert key.startswith(keys.KEY_PREFIX) and len(key) > 40
    stored = ctx.metadata.get(ApiKey, "ci", "iris")
    assert key not in stored.model_dump_json()
    assert stored.prefix == key[:12] and stored.deploy == "svc" and stored.expires_at is not None
    assert "hash" not in stored.public_dump()
    assert [k.name for k in keys.list_keys(ctx, "iris")] == ["ci"]
    with pytest.raises(AlreadyExistsError):
        keys.new_key(ctx, "iris", name="ci")


def test_bad_targets_and_expiries_are_refused(ctx: AtollContext) -> None:
    projects.new_project(ctx, "iris")
    with pytest.raises(NotFoundError):
        keys.new_key(ctx, "nope")
    with pytest.raises(InvalidNameError):
        keys.new_key(ctx, "iris", deploy="Bad_Name")
    for days in (0, -1, 10_000):
        with pytest.raises(UsageError):
            keys.new_key(ctx, "iris", expires_days=days)


def test_the_router_file_is_private_and_checks_what_the_router_checks(ctx: AtollContext) -> None:
    projects.new_project(ctx, "iris")
    _, key = keys.new_key(ctx, "iris", name="svc-only", deploy="svc")
    path = ctx.config.router_keys_file
    _assert_only_atoll_and_the_router_read(path)
    assert key.encode() not in path.read_bytes()

    auth = KeyFileAuth(path, recheck=0)
    headers = [(b"authorization", f"Bearer {key}".encode()), (b"accept", b"*/*")]
    assert auth.check(("iris", "svc"), headers) == [(b"accept", b"*/*")]
    with pytest.raises(Forbidden):
        auth.check(("iris", "other"), headers)
    keys.delete_key(ctx, "iris", "svc-only")
    with pytest.raises(Unauthorized):
        auth.check(("iris", "svc"), headers)


def test_removing_a_project_revokes_its_keys(ctx: AtollContext) -> None:
    projects.new_project(ctx, "iris")
    keys.new_key(ctx, "iris", name="k")
    projects.delete_project(ctx, "iris")
    assert keys.list_keys(ctx) == []
    assert orjson.loads(ctx.config.router_keys_file.read_bytes())["keys"] == []
    projects.new_project(ctx, "iris")
    assert keys.list_keys(ctx, "iris") == []


def _assert_only_atoll_and_the_router_read(path: Path) -> None:
    """0600 in a 0700 directory; as root, 0640 in a 0750 directory of TASK_USER's group (the swarm
    router island runs as that user, never as root): no other user of the host reads it."""
    from atoll.containers.spec import TASK_USER

    info, folder = os.stat(path), os.stat(path.parent)
    assert info.st_uid == folder.st_uid == os.geteuid()
    if os.geteuid() == 0:
        assert (stat.S_IMODE(info.st_mode), stat.S_IMODE(folder.st_mode)) == (0o640, 0o750)
        assert info.st_gid == folder.st_gid == TASK_USER[1]
    else:
        assert (stat.S_IMODE(info.st_mode), stat.S_IMODE(folder.st_mode)) == (0o600, 0o700)


def test_replica_secrets_are_shared_like_the_keys(ctx: AtollContext) -> None:
    from atoll.api.replica_secrets import replica_secret

    projects.new_project(ctx, "iris")
    keys.new_key(ctx, "iris", name="k")
    secret = replica_secret(ctx, "iris", "svc")
    path = ctx.config.router_replica_secrets_file
    assert secret in path.read_text()
    _assert_only_atoll_and_the_router_read(path)
    _assert_only_atoll_and_the_router_read(ctx.config.router_keys_file)  # the shared directory kept its mode
