"""The key and secret checks shared by the router and the balancer (:mod:`atoll._http.keys`)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from atoll._http.keys import (
    REPLICA_SECRET_HEADER,
    ReplicaSecretsFile,
    replica_secret_matches,
    with_replica_secret,
)
from atoll.containers.local.balancer import Balancer
from atoll.errors import AtollError


def test_the_clients_copy_of_the_secret_header_is_replaced() -> None:
    headers = [(b"content-type", b"text/plain"), (REPLICA_SECRET_HEADER, b"forged"), (REPLICA_SECRET_HEADER, b"again")]
    assert with_replica_secret(headers, b"real") == [(b"content-type", b"text/plain"), (REPLICA_SECRET_HEADER, b"real")]
    assert with_replica_secret(headers, None) == [(b"content-type", b"text/plain")]
    assert headers[1] == (REPLICA_SECRET_HEADER, b"forged")  # the caller's list is left alone


def test_a_replica_accepts_only_its_own_secret() -> None:
    assert replica_secret_matches([(REPLICA_SECRET_HEADER, b"s3cret")], b"s3cret")
    assert not replica_secret_matches([(REPLICA_SECRET_HEADER, b"s3crex")], b"s3cret")
    assert not replica_secret_matches([(REPLICA_SECRET_HEADER, b"")], b"s3cret")
    assert not replica_secret_matches([(b"authorization", b"Bearer s3cret")], b"s3cret")


def test_the_secrets_file_is_reread_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "replica-secrets.json"
    reader = ReplicaSecretsFile(path, recheck=0)
    assert reader.secret("p", "d") is None
    path.write_bytes(orjson.dumps({"version": 1, "secrets": {"p/d": "one"}}))
    assert reader.secret("p", "d") == b"one"
    path.write_bytes(orjson.dumps({"version": 1, "secrets": {"p/d": "two", "p/e": "three"}}))
    assert reader.secret("p", "d") == b"two" and reader.secret("p", "e") == b"three"
    path.write_bytes(b"{damaged")
    assert reader.secret("p", "d") is None  # unreadable: no secret sent, so replicas refuse (fail closed)


class _Keys:
    """Stands in for KeyFileAuth: the balancer only calls ``check``."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def check(self, target: tuple[str, str], headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        self.seen.append(target)
        if not any(name == b"authorization" for name, _ in headers):
            raise _Unauthorized("missing API key")
        return [h for h in headers if h[0] != b"authorization"]


class _Unauthorized(AtollError):
    http_status = 401


@pytest.mark.parametrize(("path", "checked"), [("/predict", True), ("/update", True), ("/other", True),
                                                ("/health", False), ("/metrics", False)])
def test_the_balancer_checks_keys_for_its_deployment_on_all_but_probes(path: str, checked: bool) -> None:
    keys = _Keys()
    balancer = Balancer(("iris", "svc"), keys, b"s")  # type: ignore[arg-type]
    answers: list[int] = []
    balancer.dispatch("POST", path, b"", [], b"", lambda status, head, body: answers.append(status))
    if checked:
        assert keys.seen == [("iris", "svc")] and answers == [401]
    else:
        assert keys.seen == [] and answers == [503]  # forwarded: to no healthy replica here
