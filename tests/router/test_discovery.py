"""Discovery backends and name checks, in-process."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import pytest
from router_helpers import write_state

from atoll._http.asgi import run_app
from atoll.errors import BackendUnavailableError, ConfigError, NotFoundError, UsageError
from atoll.router import Router, get_discovery, parse_target
from atoll.router.discovery import Replica
from atoll.router.discovery.dns import DnsDiscovery
from atoll.router.discovery.local import LocalDiscovery
from atoll.toolkit.serving import OnlinePredict


def test_parse_target_checks_names() -> None:
    assert parse_target(b"project=p1&deploy=d-2&model_version=x") == ("p1", "d-2")
    for bad in (b"project=P&deploy=d", b"project=p&deploy=d-", b"project=p%2F..&deploy=d", b"project=p"):
        with pytest.raises(UsageError):
            parse_target(bad)


def test_unknown_discovery_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="dns, local"):
        get_discovery("consul")
    with pytest.raises(ConfigError):
        get_discovery("local", state_dir="")


def test_local_reads_healthy_replicas_and_follows_changes(tmp_path: Path) -> None:
    discovery = LocalDiscovery(tmp_path, recheck=0.0)
    write_state(
        tmp_path,
        "p",
        "d",
        [
            {"name": "a", "url": "http://127.0.0.1:9001", "pid": 1, "state": "healthy"},
            {"name": "b", "url": "http://127.0.0.1:9002", "pid": 2, "state": "starting"},
        ],
    )
    assert asyncio.run(discovery.replicas("p", "d")) == [Replica("a", "127.0.0.1", 9001)]
    write_state(
        tmp_path, "p", "d", [{"name": "b", "url": "http://127.0.0.1:9002", "pid": 2, "state": "healthy"}]
    )
    assert asyncio.run(discovery.replicas("p", "d")) == [Replica("b", "127.0.0.1", 9002)]
    with pytest.raises(NotFoundError, match="no deployment 'x'"):
        asyncio.run(discovery.replicas("p", "x"))
    with pytest.raises(NotFoundError, match="unknown project 'q'"):
        asyncio.run(discovery.replicas("q", "d"))
    (tmp_path / "p" / "broken.json").write_text("{")
    with pytest.raises(BackendUnavailableError):
        asyncio.run(discovery.replicas("p", "broken"))


def test_local_trusts_its_cache_for_recheck_seconds(tmp_path: Path) -> None:
    discovery = LocalDiscovery(tmp_path, recheck=60.0)
    write_state(
        tmp_path, "p", "d", [{"name": "a", "url": "http://127.0.0.1:9001", "pid": 1, "state": "healthy"}]
    )
    first = asyncio.run(discovery.replicas("p", "d"))
    write_state(tmp_path, "p", "d", [])
    assert asyncio.run(discovery.replicas("p", "d")) == first


def _fake_resolver(records: dict[str, list[str]], calls: list[str]):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        if host not in records:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return records[host]

    return resolve


def test_dns_replicas_are_the_a_records_cached_for_ttl() -> None:
    calls: list[str] = []
    records = {"tasks.atoll-p-d": ["10.0.0.3", "10.0.0.2", "10.0.0.3"]}
    discovery = DnsDiscovery(resolver=_fake_resolver(records, calls), ttl=60)

    async def scenario() -> None:
        replicas = await discovery.replicas("p", "d")
        assert replicas == [Replica("10.0.0.2", "10.0.0.2", 8080), Replica("10.0.0.3", "10.0.0.3", 8080)]
        await discovery.replicas("p", "d")
        for _ in range(2):
            with pytest.raises(NotFoundError, match="no deployment 'x' in project 'p'"):
                await discovery.replicas("p", "x")

    asyncio.run(scenario())
    assert calls == ["tasks.atoll-p-d", "tasks.atoll-p-x"]  # answers and NXDOMAIN both cached


def test_dns_failures_other_than_nxdomain_are_unavailable() -> None:
    async def resolve(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    with pytest.raises(BackendUnavailableError):
        asyncio.run(DnsDiscovery(resolver=resolve).replicas("p", "d"))


def test_dns_name_too_long_is_not_found() -> None:
    # 63 + 63 characters make a label DNS cannot carry: refused before any query is sent.
    with pytest.raises(NotFoundError):
        asyncio.run(DnsDiscovery().replicas("a" * 63, "b" * 63))


def test_router_over_dns_discovery_forwards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATOLL_TASK_DIR", str(tmp_path))
    monkeypatch.setenv("ATOLL_REPLICA", "dns-replica")
    replica = OnlinePredict(lambda body: body[::-1])(block=False, host="127.0.0.1", port=0)
    try:
        assert replica.wait_started(10)
        records = {"tasks.atoll-p-d": ["127.0.0.1"]}
        router = Router(DnsDiscovery(port=replica.port, resolver=_fake_resolver(records, [])))
        handle = run_app(router.app, host="127.0.0.1", port=0, block=False)
        try:
            assert handle.wait_started(10)
            answer = httpx.post(f"{handle.url}/predict?project=p&deploy=d", content=b"abc")
            body = answer.json()
            assert body["metadata"].pop("datetime")  # the replica's own answer, passed through
            assert body == {"result": "cba", "metadata": {"model_version": None, "replica": "dns-replica"}}
            missing = httpx.post(f"{handle.url}/predict?project=p&deploy=zz", content=b"abc")
            assert missing.status_code == 404
            assert "'zz'" in missing.json()["error"]
        finally:
            handle.stop()
    finally:
        replica.stop()
