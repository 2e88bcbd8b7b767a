"""A Kubernetes API stand-in on 127.0.0.1: kmock's ``KubernetesEmulator`` over real HTTP.

No Kubernetes API server can run on the machines Atoll is tested on, so the
suite drives the real ``kubernetes`` client against kmock's in-memory
emulator, served in a background thread and reached through a generated
kubeconfig::

    with EmulatedCluster() as cluster:
        config.container_manager.kubernetes.kubeconfig = str(cluster.kubeconfig(tmp_path))
        ...
        assert cluster.calls("DELETE", "/jobs/")  # the API calls Atoll made

kmock 0.8 stores objects as JSON documents; :class:`AtollEmulator` adds what
the official client and Atoll's manager need and kmock does not do:

- the cluster-scoped ``namespaces`` resource (kmock cannot parse
  ``/api/v1/namespaces[/<name>]``; answered here from a set);
- ``PUT`` (replace): kmock knows only PATCH, which merges;
- ``labelSelector`` on lists (equality terms ``k=v,k2=v2``; kmock ignores it);
- server-set metadata: ``uid``, ``resourceVersion``, ``creationTimestamp``,
  ``generation`` (bumped when ``spec`` changes);
- ``pods/<name>/log`` (kmock would answer the pod itself): served from
  :meth:`AtollEmulator.set_pod_log`, with ``follow=true`` streaming until the
  pod ends.

What it still does not do — a controller must (:mod:`atoll.testing.kube_control`):
no pods appear for Jobs or Deployments, no status changes, deletion removes
the object at once (no ``propagationPolicy``, no garbage collection of owned
objects), no admission or schema validation (manifests are validated
separately with ``kubernetes-validate``), no watches on selectors, no RBAC.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import hashlib
import itertools
import threading
import uuid
from pathlib import Path
from typing import Any

import aiohttp.web
import kmock
import orjson
import yaml

_NAMESPACES = "/api/v1/namespaces"
RESOURCES = (
    "v1/pods", "v1/services", "v1/secrets", "v1/configmaps", "v1/persistentvolumeclaims", "batch/v1/jobs",
    "apps/v1/deployments", "apps/v1/statefulsets", "autoscaling/v2/horizontalpodautoscalers",
    "policy/v1/poddisruptionbudgets",
)
_DONE_PHASES = ("Succeeded", "Failed")
_FOLLOW_LIMIT = 600.0  # seconds a followed log stream may stay open


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(code: int, reason: str, message: str) -> aiohttp.web.Response:
    return aiohttp.web.json_response({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
                                      "code": code, "reason": reason, "message": message}, status=code)


def matches(selector: str | None, object_labels: dict[str, str] | None) -> bool:
    """Whether ``object_labels`` satisfy an equality label selector (``a=b,c==d,e!=f``)."""
    if not selector:
        return True
    have = object_labels or {}
    for term in selector.split(","):
        term = term.strip()
        if "!=" in term:
            key, _, value = term.partition("!=")
            if have.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, _, value = term.partition("=")
            if have.get(key.strip()) != value.lstrip("=").strip():
                return False
        elif term and term not in have:
            return False
    return True


class AtollEmulator(kmock.KubernetesEmulator):  # type: ignore[misc]
    """kmock's emulator plus the parts the official client and Atoll need (module docstring)."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.namespaces: set[str] = set()
        self.pod_logs: dict[tuple[str, str], str] = {}
        self._versions = itertools.count(1)
        for resource in RESOURCES:  # kmock answers 404 to listing a resource it has never seen
            self.resources[resource] = {}  # type: ignore[assignment]  # kmock's documented way

    def set_pod_log(self, namespace: str, pod: str, text: str) -> None:
        """What ``GET pods/<pod>/log`` answers (replaced, not appended; thread-safe by assignment)."""
        self.pod_logs[(namespace, pod)] = text

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        path = raw_request.path.rstrip("/")
        if path == _NAMESPACES or (path.startswith(_NAMESPACES + "/") and path.count("/") == 4):
            return await self._serve_namespace(raw_request, path[len(_NAMESPACES) + 1:])
        return await super().__call__(raw_request)

    async def _serve_namespace(self, raw: aiohttp.web.BaseRequest, name: str) -> aiohttp.web.StreamResponse:
        def doc(ns: str) -> dict[str, Any]:
            return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}, "status": {"phase": "Active"}}

        if raw.method == "POST":
            ns = (await raw.json()).get("metadata", {}).get("name", "")
            if ns in self.namespaces:
                return _status(409, "AlreadyExists", f'namespaces "{ns}" already exists')
            self.namespaces.add(ns)
            return aiohttp.web.json_response(doc(ns), status=201)
        if not name:
            return aiohttp.web.json_response({"apiVersion": "v1", "kind": "NamespaceList", "metadata": {},
                                              "items": [doc(ns) for ns in sorted(self.namespaces)]})
        if name not in self.namespaces:
            return _status(404, "NotFound", f'namespaces "{name}" not found')
        if raw.method == "DELETE":
            self.namespaces.discard(name)
        return aiohttp.web.json_response(doc(name))

    async def _handle(self, request: Any) -> aiohttp.web.StreamResponse:
        if request.resource is None:
            return await super()._handle(request)
        if request.subresource == "log" and request.method == "GET":
            return await self._serve_log(request)
        if request.method == "PUT" and request.name is not None:
            return await self._replace(request)
        if request.action == kmock.action.CREATE and isinstance(request.data, dict):
            meta = request.data.setdefault("metadata", {})
            meta.update({"uid": str(uuid.uuid4()), "creationTimestamp": _now(), "generation": 1,
                         "resourceVersion": str(next(self._versions))})
        elif request.action == kmock.action.UPDATE and isinstance(request.data, dict):
            self._stamp(request, request.data)
        return await super()._handle(request)

    def _stamp(self, request: Any, data: dict[str, Any]) -> None:
        """Set resourceVersion (and bump generation when spec changes) on an update's new content."""
        key = (request.resource, request.namespace, request.name)
        meta = data.setdefault("metadata", {})
        meta["resourceVersion"] = str(next(self._versions))
        if key in self.objects and not self.objects[key].deleted and "spec" in data and request.subresource is None:
            old = self.objects[key].raw.get("metadata", {})
            meta["generation"] = int(old.get("generation", 1)) + 1

    async def _replace(self, request: Any) -> aiohttp.web.StreamResponse:
        key = (request.resource, request.namespace, request.name)
        async with self._lock:
            if key not in self.objects or self.objects[key].deleted:
                return _status(404, "NotFound", f"{request.resource.plural} {request.name!r} not found")
            old = self.objects[key].raw
            new = copy.deepcopy(request.data)
            meta = new.setdefault("metadata", {})
            for kept in ("uid", "creationTimestamp", "generation"):
                if kept in old.get("metadata", {}):
                    meta[kept] = old["metadata"][kept]
            if request.subresource == "status":
                new = dict(old, status=new.get("status", {}))
            self._stamp(request, new)
            self.objects[key].create(new)
            raw = self.objects[key].raw
            await self._buses[request.resource].put({"type": "MODIFIED", "object": raw})
        return aiohttp.web.json_response(raw)

    async def _serve_list(self, request: Any) -> Any:
        listing: dict[str, Any] = dict(await super()._serve_list(request))  # type: ignore[arg-type]
        selector = request.params.get("labelSelector")
        listing["items"] = [o for o in listing["items"] if matches(selector, o.get("metadata", {}).get("labels"))]
        listing["metadata"] = {"resourceVersion": str(next(self._versions))}
        return listing

    def _pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        for (resource, ns, obj_name), obj in list(self.objects.items()):
            if resource.plural == "pods" and ns == namespace and obj_name == name and not obj.deleted:
                return dict(obj.raw)
        return None

    async def _serve_log(self, request: Any) -> aiohttp.web.StreamResponse:
        key = (request.namespace, request.name)
        if self._pod(*key) is None:
            return _status(404, "NotFound", f'pods "{request.name}" not found')
        if request.params.get("follow") != "true":
            return aiohttp.web.Response(text=self.pod_logs.get(key, ""), content_type="text/plain")
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request._raw_request)
        sent = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _FOLLOW_LIMIT
        while loop.time() < deadline:
            text = self.pod_logs.get(key, "")
            if len(text) > sent:
                await response.write(text[sent:].encode())
                sent = len(text)
            pod = self._pod(*key)
            if pod is None or pod.get("status", {}).get("phase") in _DONE_PHASES:
                text = self.pod_logs.get(key, "")
                if len(text) > sent:
                    await response.write(text[sent:].encode())
                break
            await asyncio.sleep(0.05)
        await response.write_eof()
        return response


class EmulatedCluster:
    """:class:`AtollEmulator` served over HTTP on 127.0.0.1 (a free port) in a background thread."""

    def __init__(self) -> None:
        self.emulator: AtollEmulator | None = None
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None

    def __enter__(self) -> EmulatedCluster:
        ready = threading.Event()
        failure: list[BaseException] = []

        async def serve() -> None:
            self._stopped = asyncio.Event()
            try:
                async with AtollEmulator() as emulator, kmock.Server(emulator) as server:
                    self.emulator = emulator
                    self.url = str(server.url).rstrip("/")
                    ready.set()
                    await self._stopped.wait()
            except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
                failure.append(exc)
                ready.set()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(serve())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="kube-emulator", daemon=True)
        self._thread.start()
        if not ready.wait(30) or failure:
            raise RuntimeError(f"the Kubernetes emulator did not start: {failure[0] if failure else 'timeout'}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(30)

    @property
    def api(self) -> AtollEmulator:
        if self.emulator is None:
            raise RuntimeError("the emulated cluster is not started")
        return self.emulator

    def kubeconfig(self, directory: Path, namespace: str = "default") -> Path:
        """Write a kubeconfig for this cluster (context ``emulated``) and return its path."""
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "emulated",
            "clusters": [{"name": "emulated", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": hashlib.sha256(self.url.encode()).hexdigest()}}],
            "contexts": [{"name": "emulated", "context": {"cluster": "emulated", "user": "tester",
                                                          "namespace": namespace}}],
        }
        path = directory / "kubeconfig"
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def calls(self, method: str | None = None, path_part: str = "") -> list[tuple[str, str, Any, dict[str, str]]]:
        """``(method, path, body, query)`` of the requests served so far, filtered."""
        out = []
        for request in list(self.api._requests):
            path = str(request.url.path)
            verb = str(getattr(request.method, "value", request.method))
            if (method is None or verb == method) and path_part in path:
                out.append((verb, path, request.data, dict(request.params or {})))
        return out

    def objects(self, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Live (not deleted) objects of a resource, as stored."""
        out = []
        for (resource, ns, _), obj in list(self.api.objects.items()):
            if resource.plural == plural and (namespace is None or ns == namespace) and not obj.deleted:
                out.append(orjson.loads(orjson.dumps(obj.raw)))
        return out


__all__ = ["AtollEmulator", "EmulatedCluster", "matches"]
