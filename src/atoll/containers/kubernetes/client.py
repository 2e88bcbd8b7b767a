"""One connection to a cluster through the official ``kubernetes`` client, errors translated.

:class:`KubeClient` applies Atoll's manifests (create, or replace what exists),
deletes what a label selector finds, and reads pods and their logs, always in
``container_manager.namespace`` and with ``api_timeout`` on every call. Driver
errors become Atoll's: 404 → :class:`NotFoundError`, 401/403 →
:class:`BackendError` naming the RBAC Role, an unreachable API server →
:class:`BackendUnavailableError`.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from atoll.config import Config
from atoll.containers.kubernetes.objects import Manifest, namespace_manifest
from atoll.errors import BackendError, BackendUnavailableError, ConfigError, NotFoundError

INSTALL_HINT = "pip install 'atoll[kubernetes]'"

# kind -> (API class, snake-case resource in the client's method names)
KINDS: dict[str, tuple[str, str]] = {
    "ConfigMap": ("CoreV1Api", "config_map"),
    "Deployment": ("AppsV1Api", "deployment"),
    "HorizontalPodAutoscaler": ("AutoscalingV2Api", "horizontal_pod_autoscaler"),
    "Job": ("BatchV1Api", "job"),
    "PersistentVolumeClaim": ("CoreV1Api", "persistent_volume_claim"),
    "Pod": ("CoreV1Api", "pod"),
    "PodDisruptionBudget": ("PolicyV1Api", "pod_disruption_budget"),
    "Secret": ("CoreV1Api", "secret"),
    "Service": ("CoreV1Api", "service"),
    "StatefulSet": ("AppsV1Api", "stateful_set"),
}
# What a task's removal deletes, owners first (their pods go with them).
REMOVAL_ORDER = ("HorizontalPodAutoscaler", "Deployment", "StatefulSet", "Job", "Pod", "Service", "ConfigMap",
                 "Secret", "PersistentVolumeClaim")


def _load_client() -> Any:
    try:
        import kubernetes
    except ImportError as exc:
        raise ConfigError(f"container_manager.type kubernetes needs the kubernetes client: {INSTALL_HINT}") from exc
    return kubernetes


class KubeClient:
    """The cluster of ``container_manager.kubernetes`` (kubeconfig/context, or in-cluster)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.namespace = config.container_manager.namespace
        self.timeout = config.container_manager.api_timeout
        kubernetes = _load_client()
        settings = config.container_manager.kubernetes
        configuration = kubernetes.client.Configuration()
        try:
            if settings.in_cluster:
                kubernetes.config.load_incluster_config(client_configuration=configuration)
            else:
                kubernetes.config.load_kube_config(config_file=settings.kubeconfig, context=settings.context,
                                                   client_configuration=configuration)
        except (kubernetes.config.ConfigException, OSError, TypeError) as exc:
            where = "in-cluster service account" if settings.in_cluster else (settings.kubeconfig or "~/.kube/config")
            raise ConfigError(f"container_manager.kubernetes: cannot load the cluster settings ({where}): {exc}") from exc
        configuration.retries = 1
        self.api_client = kubernetes.client.ApiClient(configuration)
        self._apis: dict[str, Any] = {}
        self._module = kubernetes.client

    def api(self, name: str) -> Any:
        if name not in self._apis:
            self._apis[name] = getattr(self._module, name)(self.api_client)
        return self._apis[name]

    def close(self) -> None:
        self.api_client.close()

    @contextlib.contextmanager
    def errors(self, what: str) -> Iterator[None]:
        """Translate the client's errors raised while doing ``what``."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            yield
        except ApiException as exc:
            reason = _reason(exc)
            if exc.status == 404:
                raise NotFoundError(f"{what}: not found in namespace {self.namespace}") from exc
            if exc.status in (401, 403):
                raise BackendError(f"{what}: the cluster refused ({exc.status} {reason}); "
                                   "the account needs the Role of `atoll kube render rbac`") from exc
            raise BackendError(f"{what}: the Kubernetes API answered {exc.status}: {reason}") from exc
        except (HTTPError, OSError) as exc:
            raise BackendUnavailableError(f"{what}: cannot reach the Kubernetes API server: {exc}") from exc

    def call(self, api: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """``<api>.<method>(*args, **kwargs)`` with the API timeout (errors not translated)."""
        return getattr(self.api(api), method)(*args, _request_timeout=self.timeout, **kwargs)

    def raw(self, api: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """Like :meth:`call` but the answer as plain JSON (dicts with the API's camelCase keys)."""
        answer = self.call(api, method, *args, _preload_content=False, **kwargs)
        return json.loads(answer.data)

    # ------------------------------------------------------------------ objects

    def _method(self, kind: str, verb: str) -> tuple[str, str]:
        api, resource = KINDS[kind]
        return api, f"{verb}_namespaced_{resource}"

    def read(self, kind: str, name: str) -> Manifest | None:
        """The object as stored, or None."""
        from kubernetes.client.exceptions import ApiException

        api, method = self._method(kind, "read")
        with self.errors(f"reading {kind} {name}"):
            try:
                return dict(self.raw(api, method, name, self.namespace))
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise

    def find(self, kind: str, selector: str) -> list[Manifest]:
        api, method = self._method(kind, "list")
        with self.errors(f"listing {kind}s ({selector})"):
            return list(self.raw(api, method, self.namespace, label_selector=selector)["items"])

    def apply(self, manifest: Manifest) -> Manifest:
        """Create the object, or replace it when it exists (keeping what the cluster assigned)."""
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        existing = self.read(kind, name)
        with self.errors(f"applying {kind} {name}"):
            if existing is None:
                api, method = self._method(kind, "create")
                return dict(self.raw(api, method, self.namespace, manifest))
            body = json.loads(json.dumps(manifest))
            body["metadata"]["resourceVersion"] = existing["metadata"].get("resourceVersion")
            if kind == "Service":  # the assigned address is immutable: a replace must repeat it
                for key in ("clusterIP", "clusterIPs"):
                    if key in existing.get("spec", {}):
                        body["spec"].setdefault(key, existing["spec"][key])
            api, method = self._method(kind, "replace")
            return dict(self.raw(api, method, name, self.namespace, body))

    def patch(self, kind: str, name: str, body: Manifest) -> Manifest:
        """Merge ``body`` into the object (e.g. ``{"spec": {"suspend": True}}``)."""
        api, method = self._method(kind, "patch")
        with self.errors(f"patching {kind} {name}"):
            return dict(self.raw(api, method, name, self.namespace, body))

    def create(self, manifest: Manifest) -> Manifest:
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        api, method = self._method(kind, "create")
        with self.errors(f"creating {kind} {name}"):
            return dict(self.raw(api, method, self.namespace, manifest))

    def delete(self, kind: str, name: str, foreground: bool = True) -> bool:
        """Delete one object (foreground: its pods go first); False when it was not there."""
        from kubernetes.client.exceptions import ApiException

        api, method = self._method(kind, "delete")
        policy = "Foreground" if foreground else "Background"
        with self.errors(f"deleting {kind} {name}"):
            try:
                self.call(api, method, name, self.namespace, propagation_policy=policy)
            except ApiException as exc:
                if exc.status == 404:
                    return False
                raise
        return True

    def delete_selected(self, selector: str, keep: Callable[[Manifest], bool] | None = None) -> None:
        """Delete every object of Atoll's kinds matching ``selector`` (except what ``keep`` keeps)."""
        for kind in REMOVAL_ORDER:
            for obj in self.find(kind, selector):
                if keep is None or not keep(obj):
                    self.delete(kind, obj["metadata"]["name"])

    def wait_gone(self, kind: str, selector: str, timeout: float | None = None) -> bool:
        """Wait until nothing of ``kind`` matches ``selector`` (foreground deletion finishing)."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while time.monotonic() < deadline:
            if not self.find(kind, selector):
                return True
            time.sleep(0.1)
        return False

    def ensure_namespace(self) -> None:
        """Create the namespace when missing and ``kubernetes.create_namespace`` allows it.

        Raises:
            ConfigError: it is missing and may not be created.
        """
        from kubernetes.client.exceptions import ApiException

        allowed = self.config.container_manager.kubernetes.create_namespace
        with self.errors(f"reading namespace {self.namespace}"):
            try:
                self.call("CoreV1Api", "read_namespace", self.namespace)
                return
            except ApiException as exc:
                if exc.status == 403 and not allowed:
                    return  # a namespaced Role cannot read namespaces: trust the setting
                if exc.status != 404:
                    raise
        if not allowed:
            raise ConfigError(f"namespace {self.namespace} does not exist (create it, or set "
                              "container_manager.kubernetes.create_namespace: true)")
        with self.errors(f"creating namespace {self.namespace}"):
            try:
                self.call("CoreV1Api", "create_namespace", namespace_manifest(self.namespace))
            except ApiException as exc:
                if exc.status != 409:  # created meanwhile
                    raise

    # ------------------------------------------------------------------ pods

    def pods(self, selector: str) -> list[Manifest]:
        """Pods matching ``selector``, oldest first."""
        return sorted(self.find("Pod", selector), key=lambda p: p["metadata"].get("creationTimestamp") or "")

    def pod_log(self, pod: str, tail: int | None = None) -> str:
        """What the pod's task container printed ("" before it started)."""
        from kubernetes.client.exceptions import ApiException

        with self.errors(f"reading the log of pod {pod}"):
            try:
                kwargs = {"tail_lines": tail} if tail else {}
                answer = self.call("CoreV1Api", "read_namespaced_pod_log", pod, self.namespace,
                                   _preload_content=False, **kwargs)
                return str(answer.data.decode("utf-8", "replace"))
            except ApiException as exc:
                if exc.status in (400, 404):  # not started yet / gone
                    return ""
                raise

    def follow_log(self, pod: str) -> Iterator[str]:
        """The pod's log lines as they come, until its container ends."""
        from kubernetes.client.exceptions import ApiException

        with self.errors(f"following the log of pod {pod}"):
            try:
                answer = self.api("CoreV1Api").read_namespaced_pod_log(
                    pod, self.namespace, follow=True, _preload_content=False)
            except ApiException as exc:
                if exc.status in (400, 404):
                    return
                raise
            pending = b""
            for chunk in answer.stream(4096):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line.decode("utf-8", "replace")
            if pending:
                yield pending.decode("utf-8", "replace")


def _reason(exc: Any) -> str:
    try:
        body = json.loads(exc.body or "{}")
        return str(body.get("message") or exc.reason)
    except (TypeError, ValueError):
        return str(exc.reason)


__all__ = ["INSTALL_HINT", "KINDS", "KubeClient"]
