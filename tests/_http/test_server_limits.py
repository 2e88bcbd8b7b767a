"""The limits of the replicas' and the ``--port`` balancer's HTTP server, over raw sockets.

A real replica process (its limits and secret in its store settings, as a
deployment hands them) and the balancer (in this process, on the same
server) in front of it; every exchange is bounded by a socket timeout. The
router runs the same server: its limits are checked at the end.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from atoll._http.asgi_server import serve
from atoll._http.server import Limits
from atoll.containers.local.balancer import Balancer
from router.router_helpers import start_replica
from support.processes import wait_for

SECRET = "t" * 43
LIMITS = {"max_body": 1024, "max_header_bytes": 4096, "header_timeout": 0.5, "body_timeout": 0.5,
          "max_connections": 4}
GOOD = (b"POST /predict HTTP/1.1\r\nhost: x\r\nx-atoll-replica-secret: " + SECRET.encode()
        + b"\r\ncontent-length: 5\r\n\r\nhello")


@pytest.fixture(scope="module")
def ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    """``{"replica": port, "balancer": port}``."""
    tmp = tmp_path_factory.mktemp("limits")
    replica = start_replica(tmp, "lim-0", replica={"secret": SECRET, "limits": LIMITS})
    limits = dict(LIMITS)
    balancer = Balancer(("proj", "dep"), secret=SECRET.encode(), max_body=limits.pop("max_body"))
    balancer.targets = (("127.0.0.1", replica.port),)
    handle = serve(balancer, host="127.0.0.1", port=0, block=False, limits=Limits(**limits))
    try:
        assert handle.wait_started()
        yield {"replica": replica.port, "balancer": handle.port}
    finally:
        handle.stop()
        replica.stop()


def exchange(port: int, data: bytes, wait: float = 5.0) -> bytes:
    """Send ``data``, then read until the server closes (at most ``wait`` seconds of silence)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(data)
        answer = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                raise AssertionError(f"the server neither answered nor closed: {answer[:200]!r}") from None
            if not chunk:
                return answer
            answer += chunk


def status(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer[9:12])


@pytest.fixture(params=["replica", "balancer"])
def port(request: pytest.FixtureRequest, ports: dict[str, int]) -> int:
    return ports[request.param]


def test_a_request_within_the_limits_is_served(port: int) -> None:
    answer = exchange(port, GOOD.replace(b"host: x", b"host: x\r\nconnection: close"))
    assert status(answer) == 200 and b'"result":"hello"' in answer


def test_a_body_over_the_limit_is_413_and_the_connection_closed(port: int) -> None:
    declared = exchange(port, GOOD.replace(b"content-length: 5", b"content-length: 2048") + b"x" * 2043)
    assert status(declared) == 413 and b"connection: close" in declared
    chunked = GOOD.replace(b"content-length: 5\r\n\r\nhello", b"transfer-encoding: chunked\r\n\r\n")
    chunked += b"400\r\n" + b"x" * 1024 + b"\r\n" + b"400\r\n" + b"x" * 1024 + b"\r\n0\r\n\r\n"
    assert status(exchange(port, chunked)) == 413


def test_a_head_over_the_limit_is_431(port: int) -> None:
    # checked per read: anything one read (256 KiB) past the limit is refused for sure
    huge = b"POST /predict HTTP/1.1\r\nhost: x\r\n" + b"x-junk: " + b"A" * (600 * 1024) + b"\r\n\r\n"
    assert status(exchange(port, huge)) == 431


def test_a_slow_head_or_body_is_408_and_the_connection_closed(port: int) -> None:
    slow_head = exchange(port, b"POST /predict HTTP/1.1\r\nhost: x\r\n")
    assert status(slow_head) == 408 and b"head not received" in slow_head
    slow_body = exchange(port, GOOD.replace(b"content-length: 5\r\n\r\nhello", b"content-length: 100\r\n\r\nabc"))
    assert status(slow_body) == 408 and b"body not received" in slow_body


def test_smuggling_and_malformed_requests_are_400_and_others_keep_being_served(port: int) -> None:
    both = GOOD.replace(b"content-length: 5\r\n", b"content-length: 5\r\ntransfer-encoding: chunked\r\n")
    assert status(exchange(port, both)) == 400
    twice = GOOD.replace(b"content-length: 5\r\n", b"content-length: 5\r\ncontent-length: 5\r\n")
    assert status(exchange(port, twice)) == 400
    assert status(exchange(port, b"POST /predict HTTP/1.1\r\nho st\r\n\r\n")) == 400
    with socket.create_connection(("127.0.0.1", port), timeout=5) as other:
        assert status(exchange(port, b"\x00\xff garbage\r\n\r\n")) == 400
        other.sendall(GOOD)
        assert status(other.recv(65536)) == 200


def test_connections_past_the_cap_get_503_until_some_close(port: int) -> None:
    # Other connections may be open already (the balancer's pooled ones to the replica), so connections
    # are opened one by one until one is refused: at the latest the one past the cap.
    cap = LIMITS["max_connections"]
    held: list[socket.socket] = []
    refused = b""
    try:
        for _ in range(cap + 1):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            held.append(sock)
            sock.sendall(GOOD)
            answer = sock.recv(65536)
            if status(answer) != 200:
                refused = answer
                break
        assert status(refused) == 503 and b"too many open connections" in refused
    finally:
        for sock in held:
            sock.close()

    def served() -> bool:
        return status(exchange(port, GOOD.replace(b"host: x", b"host: x\r\nconnection: close"))) == 200

    wait_for(served, timeout=5)


def test_the_router_has_the_same_server_and_limits(tmp_path_factory: pytest.TempPathFactory) -> None:
    from router.router_helpers import start_router

    tmp = tmp_path_factory.mktemp("router-limits")
    router = start_router(tmp, tmp / "state")  # --max-body 1 MiB; the other limits at their defaults
    try:
        huge = b"POST /predict HTTP/1.1\r\nhost: x\r\n" + b"x-junk: " + b"A" * (600 * 1024) + b"\r\n\r\n"
        assert status(exchange(router.port, huge)) == 431
        big = b"POST /predict?project=p&deploy=d HTTP/1.1\r\nhost: x\r\ncontent-length: 2000000\r\n\r\n"
        assert status(exchange(router.port, big)) == 413
        both = b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n"
        assert status(exchange(router.port, both)) == 400
    finally:
        router.stop()
