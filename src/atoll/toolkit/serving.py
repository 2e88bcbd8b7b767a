"""Prediction servers started by the last cell of a prediction notebook.

``OnlinePredict(predict)()`` serves one model; ``LazyModelServer(predict, load)()``
serves many versions from one deployment, loading them on demand. Both are raw
ASGI apps served by Atoll's own HTTP server (:mod:`atoll._http.asgi_server`,
with its limits: body size, head size, read timeouts, connection cap): the hot
path is read the body, call the function, ``orjson.dumps`` the answer, bump two ints.

In a deployment's replica the task's store settings carry a replica secret
(:func:`atoll.task.stores.replica_settings`): every request but ``GET /health``
and ``GET /metrics`` must then carry it as ``x-atoll-replica-secret`` (the
router and the ``--port`` balancer add it), else 403. Outside a deployment
(a notebook in the IDE, a script) there is none and every request is served.

Routes::

    POST /predict   body (text) -> {"result": ..., "metadata": {"datetime", "model_version", "replica"}}
    POST /update    (LazyModelServer) reload ?model_version=V; with &default=true it also becomes
                    the version served to requests that name none
    GET  /health    200 {"status": "ok", "server": "OnlinePredict"|"LazyModelServer"} once ready,
                    503 before and while stopping
    GET  /metrics   Prometheus text

``datetime`` is when the answer was made, ISO-8601 in UTC with milliseconds
(``2026-12-03T08:15:02.117+00:00``). The ``server`` of ``/health`` is how
``atoll train new --target-deploy`` tells a lazy deployment from another one
(:mod:`atoll.api.hot_update`).

Errors of the predict function become JSON answers and the replica keeps
serving: ``ValueError`` (bad input) -> 400, an :class:`~atoll.errors.AtollError`
-> its ``http_status``, anything else -> 500.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl


from atoll._http.asgi import (
    Receive,
    Scope,
    Send,
    dumps,
    read_body,
    send_bytes,
)
from atoll.domain.names import is_valid_name
from atoll.errors import AtollError, NotFoundError, UsageError
from atoll.toolkit import paths
from atoll.toolkit.batching import BatchConfig, Batcher
from atoll.toolkit.predict_server import PredictServer, _staged_version_name, replica_name, utc_now


class OnlinePredict(PredictServer):
    """Serve ``predict_func(body: str)`` over HTTP.

    Args:
        predict_func: called with the request body as text; returns anything
            JSON-serializable (numpy arrays and pandas objects included). It may
            be ``async``. Raise ``ValueError`` for bad input (-> 400).
        enrich: wrap the result as ``{"result": ..., "metadata": {"datetime",
            "model_version", "replica"}}``; when False the answer is the bare result.
        batch: gather concurrent requests (see :mod:`atoll.toolkit.batching`);
            ``predict_func`` then takes a list of bodies and returns a list of
            results, one per body, in order.
    """

    def __init__(
        self, predict_func: Callable[..., Any], enrich: bool = True, batch: BatchConfig | None = None
    ) -> None:
        super().__init__(enrich)
        if not callable(predict_func):
            raise UsageError("OnlinePredict needs a function taking the request body")
        self.predict_func = predict_func
        self._is_async = inspect.iscoroutinefunction(predict_func)
        self.metadata = {"model_version": _staged_version_name(), "replica": self.replica}
        if batch is not None:
            self._batching(batch, self._predict_batched)
            self._batcher = Batcher(batch, predict_func, self.batch_sizes)

    async def _predict_batched(self, scope: Scope, receive: Receive, send: Send) -> int:
        try:
            body = (await read_body(receive)).decode()
        except Exception as exc:  # noqa: BLE001
            return await self._fail(send, exc, "predict")
        return await self._answer_batched(self._batcher, body, receive, send, self.metadata)

    async def _predict(self, scope: Scope, receive: Receive, send: Send) -> int:
        try:
            body = (await read_body(receive)).decode()
            result = self.predict_func(body)
            if self._is_async:
                result = await result
            payload = dumps(
                {"result": result, "metadata": {"datetime": utc_now(), **self.metadata}} if self.enrich else result
            )
        except Exception as exc:  # noqa: BLE001 - user code: any error becomes an answer
            return await self._fail(send, exc, "predict")
        await send_bytes(send, 200, payload)
        return 200


class LazyModelServer(PredictServer):
    """Serve many model versions from one deployment, loading each on first use.

    ``POST /predict?model_version=V`` loads V (``model:version`` or a version
    name) with ``load_model_func(path, meta)`` unless it is cached, then answers
    ``predict_func(body, model, meta)``. At most ``max_models`` stay loaded
    (least recently used dropped first). ``POST /update?model_version=V``
    loads V again; ``&default=true`` also makes V the version served without
    ``model_version`` (what ``atoll train new --target-deploy`` sends to every
    replica). Without ``model_version`` (and before any such update) the first
    staged version is used. A version not staged in the task is fetched with
    :func:`atoll.toolkit.requirements.require_version`.

    The signature and defaults are those of the modelled framework's
    ``LazyModelServer(predict_func, load_model_func, model_name=None, max_models=100)``.

    Args:
        predict_func: ``(body: str, model, meta: dict) -> result``; may be ``async``.
        load_model_func: ``(path: str, meta: dict) -> model``; runs in a worker
            thread so the server keeps answering while it loads. ``meta`` is
            the version's record (a dict whose keys also read as attributes).
        model_name: the model every served version belongs to: a bare
            ``?model_version=V`` means ``model_name:V`` and another model's
            version is refused (400). None: the staged versions' model, else
            the project's only model.
        max_models: how many loaded versions to keep (default 100).
        enrich: wrap results with metadata (see :class:`OnlinePredict`).
        batch: gather concurrent requests for the same version into one call of
            ``predict_func(bodies: list[str], model, meta) -> list``.
    """

    server_kind = "LazyModelServer"

    def __init__(
        self,
        predict_func: Callable[..., Any],
        load_model_func: Callable[[str, dict[str, Any]], Any],
        model_name: str | None = None,
        max_models: int = 100,
        enrich: bool = True,
        batch: BatchConfig | None = None,
    ) -> None:
        super().__init__(enrich)
        if not callable(predict_func) or not callable(load_model_func):
            raise UsageError("LazyModelServer needs a predict function and a load function")
        if model_name is not None and not (isinstance(model_name, str) and is_valid_name(model_name)):
            raise UsageError(f"model_name must be a model name, not {model_name!r}")
        if not isinstance(max_models, int) or isinstance(max_models, bool) or max_models < 1:
            raise UsageError(f"max_models must be a positive integer, not {max_models!r}")
        self.predict_func = predict_func
        self.load_model_func = load_model_func
        self.model_name = model_name
        self.max_models = max_models
        self._is_async = inspect.iscoroutinefunction(predict_func)
        self._routes["/update"] = ("POST", self._update, True)
        # "model:version" -> (model object, meta, response metadata); most recently used last.
        self._models: OrderedDict[str, tuple[Any, dict[str, Any], dict[str, Any]]] = OrderedDict()
        self._aliases: dict[str, str] = {}  # query value as sent -> "model:version"
        self._loading: dict[str, asyncio.Future[None]] = {}
        self._default: str | None = None
        self._batch = batch or BatchConfig()
        self._batchers: dict[str, tuple[Any, Batcher]] = {}  # key -> (loaded entry it calls, batcher)
        if batch is not None:
            self._batching(batch, self._predict_batched)

    @property
    def loaded(self) -> list[str]:
        """Loaded versions as ``model:version``, least recently used first."""
        return list(self._models)

    def _gauges(self) -> dict[str, tuple[str, float]]:
        return {"models_loaded": ("Model versions held in memory.", len(self._models))}

    async def _body_and_version(self, scope: Scope, receive: Receive) -> tuple[str, str]:
        """The request body and the loaded version it asks for (``model:version``), now most recently used."""
        body = (await read_body(receive)).decode()
        key = await self._ensure(_version_param(scope["query_string"]))
        self._models.move_to_end(key)
        return body, key

    async def _predict(self, scope: Scope, receive: Receive, send: Send) -> int:
        try:
            body, key = await self._body_and_version(scope, receive)
        except Exception as exc:  # noqa: BLE001 - load errors become answers too
            return await self._fail(send, exc, "loading a model version")
        model, meta, metadata = self._models[key]
        try:
            result = self.predict_func(body, model, meta)
            if self._is_async:
                result = await result
            payload = dumps({"result": result, "metadata": {"datetime": utc_now(), **metadata}} if self.enrich else result)
        except Exception as exc:  # noqa: BLE001 - user code: any error becomes an answer
            return await self._fail(send, exc, "predict")
        await send_bytes(send, 200, payload)
        return 200

    async def _predict_batched(self, scope: Scope, receive: Receive, send: Send) -> int:
        try:
            body, key = await self._body_and_version(scope, receive)
        except Exception as exc:  # noqa: BLE001 - load errors become answers too
            return await self._fail(send, exc, "loading a model version")
        entry = self._models[key]
        known = self._batchers.get(key)
        if known is None or known[0] is not entry:  # first use, or the version was (re)loaded
            if len(self._batchers) > 2 * self.max_models:  # forget batchers of evicted versions
                self._batchers = {k: v for k, v in self._batchers.items() if k in self._models}
            batcher = Batcher(self._batch, self.predict_func, self.batch_sizes, args=entry[:2])
            known = self._batchers[key] = (entry, batcher)
        return await self._answer_batched(known[1], body, receive, send, entry[2])

    async def _update(self, scope: Scope, receive: Receive, send: Send) -> int:
        try:
            await read_body(receive)
            make_default = _flag_param(scope["query_string"], "default")
            key = await self._ensure(_version_param(scope["query_string"]), reload=True)
        except Exception as exc:  # noqa: BLE001
            return await self._fail(send, exc, "reloading a model version")
        if make_default:
            self._default = key
            self._aliases[""] = key
        answer = {"status": "loaded", "model_version": key, "replica": self.replica, "default": self._default}
        await send_bytes(send, 200, dumps(answer))
        return 200

    async def _ensure(self, param: str | None, reload: bool = False) -> str:
        """Make sure the version named by ``param`` is loaded; return its ``model:version`` key."""
        key = self._aliases.get(param or "")
        if key is None:
            model, version = await asyncio.to_thread(self._resolve, param)
            key = f"{model}:{version}"
            if len(self._aliases) > 1024:
                self._aliases.clear()
            self._aliases[param or ""] = key
        if key in self._models and not reload:
            return key
        pending = self._loading.get(key)
        if pending is not None:  # someone is loading it already: wait for that load
            await asyncio.shield(pending)
            if key in self._models:
                return key
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            loaded = await asyncio.to_thread(self._load, key)
            self._models[key] = loaded
            self._models.move_to_end(key)
            while len(self._models) > self.max_models:
                self._models.popitem(last=False)
        finally:
            del self._loading[key]
            future.set_result(None)
        return key

    def _resolve(self, param: str | None) -> tuple[str, str]:
        """(model, version) named by the query value; runs in a worker thread."""
        staged = paths.staged_versions()
        if self.model_name is not None:
            staged = [(m, v) for m, v in staged if m == self.model_name]
        if param is None:
            if self._default is None:
                if not staged:
                    of = f" of model {self.model_name}" if self.model_name else ""
                    raise NotFoundError(f"no model version{of} is staged here; pass ?model_version=MODEL:VERSION")
                self._default = f"{staged[0][0]}:{staged[0][1]}"
            model, _, version = self._default.partition(":")
            return model, version
        model_name, colon, version = param.rpartition(":")
        if not colon:
            model_name, version = self.model_name or "", param
        if not is_valid_name(version) or (colon and not is_valid_name(model_name)):
            raise UsageError(f"malformed model_version {param!r}: expected MODEL:VERSION or VERSION")
        if self.model_name is not None and model_name != self.model_name:
            raise UsageError(f"model_version {param!r}: this server serves versions of {self.model_name} only")
        if model_name and (model_name, version) in staged:
            return model_name, version
        if not model_name:
            same = [m for m, v in staged if v == version]
            if len(same) > 1:
                raise UsageError(f"several models have a version {version!r}; use MODEL:VERSION")
            if same:
                return same[0], version
            models = {m for m, _ in staged}
            model_name = models.pop() if len(models) == 1 else ""
        from atoll.toolkit.requirements import require_version  # heavy: only when staging is needed

        directory = Path(require_version(version, model=model_name or None))
        model_name = directory.name.partition(".")[0] or model_name
        return model_name, version

    def _load(self, key: str) -> tuple[Any, dict[str, Any], dict[str, Any]]:
        """Load one version from its staged directory; runs in a worker thread."""
        model_name, _, version = key.partition(":")
        path = paths.task_root() / "model" / f"{model_name}.{version}"
        if not path.is_dir():
            from atoll.toolkit.requirements import require_version

            path = Path(require_version(version, model=model_name))
        try:
            meta = paths.Meta(paths.version_meta(model_name, version))
        except NotFoundError:
            meta = paths.Meta(name=version, model=model_name)
        try:
            model = self.load_model_func(str(path), meta)
        except AtollError:
            raise
        except Exception as exc:
            raise RuntimeError(f"loading model version {key} failed: {exc}") from exc
        return model, meta, {"model_version": key, "replica": self.replica}


def _flag_param(query_string: bytes, name: str) -> bool:
    """True when the query sets ``name`` to true/1/yes (UsageError for another value)."""
    if not query_string or name.encode() not in query_string:
        return False
    for key, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if key == name:
            lowered = value.lower()
            if lowered in ("true", "1", "yes", ""):
                return True
            if lowered in ("false", "0", "no"):
                return False
            raise UsageError(f"{name}={value!r}: expected true or false")
    return False


def _version_param(query_string: bytes) -> str | None:
    """The ``model_version`` query value, None when absent or empty."""
    if not query_string or b"model_version" not in query_string:
        return None
    for name, value in parse_qsl(query_string.decode("latin-1")):
        if name == "model_version":
            return value or None
    return None


__all__ = ["BatchConfig", "LazyModelServer", "OnlinePredict", "replica_name", "utc_now"]
