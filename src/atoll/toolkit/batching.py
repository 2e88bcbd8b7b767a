"""Adaptive batching for the prediction servers (opt-in).

``OnlinePredict(predict_batch, batch=BatchConfig(max_size=64, max_latency_ms=5))``
gathers requests that arrive together into one call of
``predict_batch(bodies: list[str]) -> list`` and answers each request with its
own result. A vectorised model (scikit-learn, numpy, a GPU network) pays its
fixed cost once per batch instead of once per request, so under concurrency a
replica answers several times more requests per second.

How a batch forms: the first request waits at most ``max_latency_ms`` for
others; the batch is dispatched as soon as it holds ``max_size`` requests or
the wait is over. While a batch runs (it runs on the event loop, like the
unbatched path: no thread hop) new requests queue up, so the busier the replica
the fuller its batches: the batch size adapts to the load.

Errors stay per request:

- ``predict_batch`` may put an exception *instance* in place of a result: that
  request alone fails (``ValueError`` -> 400, see the servers' error mapping).
- When ``predict_batch`` raises, each request of the batch is retried alone
  (``predict_batch([body])``) so one bad body fails only its own request.
- A client that disconnects before its batch is dispatched leaves the batch;
  one that leaves during the call has its result dropped. (Clients are watched
  once their request has waited 5 ms: most are answered before, at no cost.)

Only the batched route pays for any of this; the unbatched hot path is untouched.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from atoll._http.asgi import Receive
from atoll._http.metrics import SizeHistogram
from atoll.errors import UsageError

#: Status recorded (never sent) for a request whose client went away: nginx's "client closed request".
CLIENT_CLOSED = 499
#: Seconds a request waits before its client is watched for a disconnect.
WATCH_AFTER = 0.005


@dataclass(frozen=True)
class BatchConfig:
    """How requests are gathered into batches.

    Args:
        max_size: most requests in one call of the batch function.
        max_latency_ms: longest time the first request of a batch waits for
            others before the batch is dispatched (0: dispatch what has arrived).
    """

    max_size: int = 32
    max_latency_ms: float = 5.0

    def __post_init__(self) -> None:
        if not isinstance(self.max_size, int) or isinstance(self.max_size, bool) or self.max_size < 1:
            raise UsageError(f"BatchConfig max_size must be a positive integer, not {self.max_size!r}")
        if not isinstance(self.max_latency_ms, (int, float)) or not 0 <= self.max_latency_ms <= 60_000:
            raise UsageError(
                f"BatchConfig max_latency_ms must be between 0 and 60000, not {self.max_latency_ms!r}"
            )


class ClientDisconnected(Exception):
    """The client closed its connection before its answer was ready."""


class _Request:
    __slots__ = ("arrival", "body", "future", "watcher")

    def __init__(self, body: str, arrival: float, future: asyncio.Future[Any]) -> None:
        self.body = body
        self.arrival = arrival
        self.future = future
        self.watcher: asyncio.Task[None] | None = None


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _disconnect(receive: Receive) -> None:
    """Return once the server reports that the client went away."""
    while (await receive())["type"] != "http.disconnect":
        pass


class Batcher:
    """Gathers submitted bodies into calls of one batch function, on the running event loop.

    Args:
        config: batch size and latency limits.
        predict_batch: ``(bodies: list[str]) -> Sequence`` (may be ``async``),
            one result (or exception instance) per body, in order.
        sizes: histogram receiving the size of every call.
        args: more positional arguments for every call (the model and its meta).
    """

    def __init__(
        self,
        config: BatchConfig,
        predict_batch: Callable[..., Any],
        sizes: SizeHistogram,
        args: tuple[Any, ...] = (),
    ) -> None:
        if not callable(predict_batch):
            raise UsageError("batching needs a function taking a list of request bodies")
        self.config = config
        self.predict_batch = predict_batch
        self.sizes = sizes
        self.args = args
        self._is_async = inspect.iscoroutinefunction(predict_batch)
        self._max_wait = config.max_latency_ms / 1000
        self._queue: deque[_Request] = deque()
        self._full: asyncio.Future[None] | None = None  # set when the queue reaches max_size
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, body: str, receive: Receive) -> Any:
        """This body's result, once its batch ran.

        Raises:
            ClientDisconnected: ``receive`` reported a disconnect first.
            Exception: whatever the batch function raised or returned for this body.
        """
        loop = asyncio.get_running_loop()
        request = _Request(body, loop.time(), loop.create_future())
        self._queue.append(request)
        if self._worker is None:
            self._worker = loop.create_task(self._run())
        elif len(self._queue) >= self.config.max_size and self._full is not None:
            _wake(self._full)
        # Most requests are answered within milliseconds: watching for a disconnect (a task per
        # request) starts only for those still waiting after WATCH_AFTER.
        timer = loop.call_later(WATCH_AFTER, self._watch, request, receive)
        try:
            return await request.future
        except asyncio.CancelledError:
            watcher = request.watcher
            if watcher is not None and watcher.done() and not watcher.cancelled():
                watcher.exception()  # retrieved: a receive that failed counts as a disconnect, not a crash
                raise ClientDisconnected("the client closed the connection") from None
            raise  # the handler itself was cancelled (server shutdown)
        finally:
            timer.cancel()
            if request.watcher is not None:
                request.watcher.cancel()

    def _watch(self, request: _Request, receive: Receive) -> None:
        """Start watching the client of a request that is still waiting."""
        if not request.future.done():
            request.watcher = asyncio.get_running_loop().create_task(_disconnect(receive))
            request.watcher.add_done_callback(lambda _: self._leave(request))

    def _leave(self, request: _Request) -> None:
        """The client went away (or the watcher ended): drop its request unless it was answered."""
        if request.future.done():
            return
        request.future.cancel()  # the worker drops its result if the batch is running
        if request in self._queue:  # not dispatched yet: it must not count towards a full batch
            self._queue.remove(request)

    async def _run(self) -> None:
        """Dispatch batches until the queue is empty, then end (the next submit starts a new run)."""
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                await self._fill(loop)
                batch: list[_Request] = []
                while self._queue and len(batch) < self.config.max_size:
                    request = self._queue.popleft()
                    if not request.future.done():  # done here means its client left
                        batch.append(request)
                if batch:
                    await self._dispatch(batch)
                # Let requests that arrived while the batch ran be read before the next one forms.
                await asyncio.sleep(0)
        finally:
            self._worker = None

    async def _fill(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait until the queue holds a full batch or the oldest request waited ``max_latency_ms``."""
        delay = self._queue[0].arrival + self._max_wait - loop.time()
        if len(self._queue) >= self.config.max_size or delay <= 0:
            return
        self._full = loop.create_future()
        timer = loop.call_later(delay, _wake, self._full)
        try:
            await self._full
        finally:
            timer.cancel()
            self._full = None

    async def _dispatch(self, batch: list[_Request]) -> None:
        """One call of the batch function; its results (or errors) go to each request."""
        self.sizes.observe(len(batch))
        try:
            results = self.predict_batch([request.body for request in batch], *self.args)
            if self._is_async:
                results = await results
            results = _as_list(results, len(batch))
        except Exception as exc:  # noqa: BLE001 - user code: the error belongs to the requests
            if len(batch) > 1 and not isinstance(exc, _WrongLength):
                for request in batch:  # find the culprit: each request alone
                    if not request.future.done():
                        await self._dispatch([request])
                return
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(exc)
            return
        for request, result in zip(batch, results):
            if request.future.done():
                continue
            if isinstance(result, BaseException):
                request.future.set_exception(result)
            else:
                request.future.set_result(result)


class _WrongLength(RuntimeError):
    """The batch function broke its contract; retrying requests alone would not help."""


def _as_list(results: Any, expected: int) -> Sequence[Any]:
    """The batch function's answer as a sequence of ``expected`` results (numpy arrays included)."""
    try:
        items = list(results)
    except TypeError:
        raise _WrongLength(
            f"the batch function must return a list of results, not {type(results).__name__}"
        ) from None
    if len(items) != expected:
        raise _WrongLength(f"the batch function returned {len(items)} results for {expected} requests")
    return items


__all__ = ["CLIENT_CLOSED", "BatchConfig", "Batcher", "ClientDisconnected"]
