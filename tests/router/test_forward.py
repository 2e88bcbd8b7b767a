"""The forwarding client's timeout: a replica that does not answer in time gets cut off, others do not."""

from __future__ import annotations

import asyncio
import time

from atoll._http.client import Pool, UpstreamTimeout


class _Upstream(asyncio.Protocol):
    """Answers each request ``ok`` after the delay, in seconds, given as its body (never for ``never``)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        body = data.partition(b"\r\n\r\n")[2]
        if body == b"never":
            return
        answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
        asyncio.get_running_loop().call_later(float(body), self.transport.write, answer)  # type: ignore[attr-defined]


async def _with_upstream(timeout: float, bodies: list[bytes]) -> list[tuple[object, float]]:
    """Send each body in turn through a fresh pool; the answer (or error) and seconds taken for each."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Upstream, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = Pool(timeout=timeout)
    outcomes: list[tuple[object, float]] = []
    try:
        for body in bodies:
            began = time.monotonic()
            try:
                answer: object = await asyncio.wait_for(
                    pool.request("127.0.0.1", port, "POST", b"/", [], body), 5
                )
            except (UpstreamTimeout, asyncio.TimeoutError) as exc:
                answer = exc
            outcomes.append((answer, time.monotonic() - began))
    finally:
        pool.close()
        server.close()
        await server.wait_closed()
    return outcomes


def test_a_silent_replica_times_out_and_the_next_request_still_works() -> None:
    outcomes = asyncio.run(_with_upstream(0.4, [b"never", b"0"]))
    (timed_out, took), (answer, _) = outcomes
    assert isinstance(timed_out, UpstreamTimeout)
    assert "did not answer in time" in str(timed_out)
    assert 0.35 <= took < 1.5
    assert getattr(answer, "status", None) == 200
    assert getattr(answer, "body", None) == b"ok"


def test_a_slow_answer_within_the_timeout_is_not_cut_off() -> None:
    outcomes = asyncio.run(_with_upstream(1.0, [b"0", b"0.6", b"0.6"]))
    for answer, _ in outcomes:
        assert not isinstance(answer, Exception), answer
        assert getattr(answer, "body", None) == b"ok"


def test_every_one_of_several_concurrent_silent_requests_times_out() -> None:
    async def main() -> list[BaseException | object]:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Upstream, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        pool = Pool(timeout=0.3)
        try:
            calls = [pool.request("127.0.0.1", port, "POST", b"/", [], b"never") for _ in range(5)]
            calls.append(pool.request("127.0.0.1", port, "POST", b"/", [], b"0"))
            return await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 5)
        finally:
            pool.close()
            server.close()
            await server.wait_closed()

    results = asyncio.run(main())
    assert all(isinstance(r, UpstreamTimeout) for r in results[:5])
    assert getattr(results[5], "body", None) == b"ok"
