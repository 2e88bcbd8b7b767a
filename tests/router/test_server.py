"""The router's own HTTP server, seen on the wire."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import orjson
from router_helpers import Cluster, start_router

Predict = Callable[..., httpx.Response]


def _connect(cluster: Cluster) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", cluster.router.port), timeout=10)
    return sock


def _read_answers(sock: socket.socket, count: int) -> list[tuple[int, bytes]]:
    """Read ``count`` whole answers (content-length framed) from ``sock``."""
    data = b""
    answers: list[tuple[int, bytes]] = []
    while len(answers) < count:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return answers
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            rest += sock.recv(65536)
        answers.append((status, rest[:length]))
        data = rest[length:]
    return answers


def _request(body: bytes, query: bytes = b"project=proj&deploy=dep", extra: bytes = b"") -> bytes:
    return (
        b"POST /predict?" + query + b" HTTP/1.1\r\nhost: x\r\n" + extra
        + b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )  # fmt: skip


def test_pipelined_requests_are_answered_in_order(cluster: Cluster) -> None:
    with _connect(cluster) as sock:
        sock.sendall(_request(b"slow") + _request(b"fast") + _request(b"x", b"project=nope&deploy=dep"))
        answers = _read_answers(sock, 3)
    assert [status for status, _ in answers] == [200, 200, 404]
    assert orjson.loads(answers[0][1])["result"] == "slow"
    assert orjson.loads(answers[1][1])["result"] == "fast"


def test_expect_100_continue(cluster: Cluster) -> None:
    with _connect(cluster) as sock:
        sock.sendall(
            b"POST /predict?project=proj&deploy=dep HTTP/1.1\r\nhost: x\r\n"
            b"expect: 100-continue\r\ncontent-length: 5\r\n\r\n"
        )
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(b"hello")
        [(status, body)] = _read_answers(sock, 1)
    assert status == 200
    assert orjson.loads(body)["result"] == "hello"


def test_chunked_request_body(predict: Predict, cluster: Cluster) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"ab"
        yield b"cd"

    answer = httpx.post(f"{cluster.router.url}/predict?project=proj&deploy=dep", content=chunks())
    assert answer.status_code == 200
    assert answer.json()["result"] == "abcd"


def test_body_over_the_limit_is_413(predict: Predict) -> None:
    assert predict("project=proj&deploy=dep", b"x" * (2 * 1024 * 1024)).status_code == 413
    assert predict("project=proj&deploy=dep", b"ok").status_code == 200


def test_malformed_request_is_400_and_closed(cluster: Cluster) -> None:
    with _connect(cluster) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 400 ")
    assert b"connection: close" in data


def test_sigterm_finishes_in_flight_requests(cluster: Cluster) -> None:
    router = start_router(cluster.tmp, cluster.state, name="router-term")
    try:
        answers: list[httpx.Response] = []
        url = f"{router.url}/predict?project=proj&deploy=dep"
        slow = threading.Thread(target=lambda: answers.append(httpx.post(url, content=b"slow", timeout=10)))
        slow.start()
        time.sleep(0.4)
        router.proc.send_signal(signal.SIGTERM)
        slow.join(10)
        assert answers and answers[0].status_code == 200
        assert router.proc.wait(10) == 0
    finally:
        router.stop()
