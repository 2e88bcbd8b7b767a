"""A test kubelet that really runs the pods of the emulated cluster on the local Docker engine.

It implements what Atoll's pods use, no more:

- init containers, run in order to completion before the task container;
- ``command`` (the entry point), ``workingDir``, ``env`` (values and the pod's
  name through ``fieldRef: metadata.name``), ``resources.limits.memory``, the
  pod's ``runAsUser``/``runAsGroup`` and ``fsGroup`` (the volumes' files
  belong to that group, which the containers get as a supplementary one);
- volumes: ``emptyDir``, ``configMap`` (with ``items``), ``secret`` and
  ``projected`` secrets (file mode from ``defaultMode``), mounted read-only
  where the manifest says so, ``subPath`` included; while the pod runs, a
  changed Secret or ConfigMap replaces the files of its volume (a new file
  swapped in by rename, as the kubelet swaps its ``..data`` link) within
  ``VOLUME_SYNC`` seconds, a kubelet's sync period standing for about a minute
  (as on a node, a ``subPath`` file mount keeps the file it started with; a
  key removed from the Secret keeps its file here);
- readiness probes (``httpGet``, ``tcpSocket``) against the container's
  address on Docker's bridge; ``restartPolicy: Always`` (the default)
  restarts an exited container (counted in ``restartCount``) after a fixed
  back-off (10 s, doubling; not the kubelet's own timing),
  reported meanwhile as a kubelet does: waiting ``CrashLoopBackOff`` with the
  exit in ``lastState``;
- the container's log, copied to the emulator's ``pods/<name>/log``;
- a deleted pod's containers get SIGTERM, then SIGKILL after
  ``terminationGracePeriodSeconds`` (30), before they are removed;
- with ``network``, every container also joins that Docker network (the
  stand-in for the cluster network: e.g. the swarm islands' attachable overlay,
  where the islands' service names resolve as Service names would in a
  cluster); the pod's IP stays its address on Docker's default bridge, which
  this host reaches.

Images: the kubelet never pulls. A ``repo@sha256:<digest>`` the engine holds
(e.g. a build pushed to a test registry) runs as is; one that no local image
carries is resolved to the local image with that id — the stand-in for a
registry pull; an image that cannot be found reports ``ImagePullBackOff`` as
a node would. Not supported (the pod fails with the reason): NFS and
PersistentVolumeClaim volumes, liveness/startup probes (not evaluated), GPUs,
pod networking beyond the default bridge and the optional ``network``.
Not emulated at all: Services (no kube-proxy: a client reaches a pod on its
IP), scheduling over nodes (affinity is ignored: one engine is one node) and
PodDisruptionBudgets.

Containers are named ``<prefix>-<pod>-<container>`` and labelled with the
prefix; :meth:`DockerKubelet.close` removes exactly those.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atoll.testing.kube_control import Kubelet, Pod

if TYPE_CHECKING:
    from docker import DockerClient

LABEL = "io.atoll.test-kubelet"
LOG_EVERY = 0.3  # seconds between two copies of a container's log
BACKOFF = 10.0  # seconds before the first restart of a crashed container (then doubling), as a kubelet
VOLUME_SYNC = 1.0  # seconds between two refreshes of a running pod's Secret and ConfigMap files


def _mem_bytes(quantity: str) -> int:
    units = {"Ki": 1024, "Mi": 1024 ** 2, "Gi": 1024 ** 3, "K": 1000, "M": 1000 ** 2, "G": 1000 ** 3}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return int(float(quantity[: -len(suffix)]) * factor)
    return int(quantity)


class _PodRun:
    """One pod's containers and what the kubelet knows of them."""

    def __init__(self, pod: Pod) -> None:
        self.pod = pod
        self.name = pod["metadata"]["name"]
        self.phase = "Pending"
        self.init_statuses: list[dict[str, Any]] = []
        self.waiting: tuple[str, str] | None = None  # (reason, message)
        self.failure: tuple[str, str] | None = None  # pod-level (reason, message)
        self.main_id: str | None = None
        self.restarts = 0
        self.last_exit: dict[str, Any] | None = None  # lastState.terminated of a restarted container
        self.restart_at: float | None = None  # end of the crash-loop back-off
        self.ready = False
        self.next_probe = 0.0
        self.next_log = 0.0
        self.next_volume_sync = 0.0
        self.volume_dirs: dict[str, Path] = {}
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None


class DockerKubelet(Kubelet):
    """Runs the emulated cluster's pods as Docker containers (see the module docstring).

    Args:
        client: the Docker engine.
        read_object: ``(kind, namespace, name) -> dict | None`` for ConfigMaps and Secrets.
        set_log: where pod logs go (the emulator's ``set_pod_log``).
        workdir: host directory for volumes (removed by :meth:`close`).
        prefix: container name prefix, unique per test run.
        network: a Docker network every container joins as well (None: the default bridge only).
    """

    def __init__(self, client: DockerClient, read_object: Callable[[str, str, str], dict[str, Any] | None],
                 set_log: Callable[[str, str, str], None], workdir: Path, prefix: str,
                 network: str | None = None) -> None:
        self.client = client
        self.network = network
        self.read_object = read_object
        self.set_log = set_log
        self.workdir = workdir
        self.prefix = prefix
        self.runs: dict[str, _PodRun] = {}

    # ------------------------------------------------------------------ Kubelet

    def sync(self, pod: Pod) -> dict[str, Any] | None:
        uid = pod["metadata"]["uid"]
        run = self.runs.get(uid)
        if run is None:
            run = self.runs[uid] = _PodRun(pod)
            run.thread = threading.Thread(target=self._start, args=(run,), name=f"kubelet-{run.name}", daemon=True)
            run.thread.start()
        with run.lock:
            self._observe(run)
            status = self._status(run)
        current = pod.get("status") or {}
        return None if all(current.get(k) == v for k, v in status.items()) else status

    def forget(self, pod: Pod) -> None:
        run = self.runs.pop(pod["metadata"]["uid"], None)
        if run is not None:
            self._remove(run)

    def close(self) -> None:
        for uid in list(self.runs):
            self._remove(self.runs.pop(uid))
        shutil.rmtree(self.workdir, ignore_errors=True)

    # ------------------------------------------------------------------ starting

    def _container_name(self, run: _PodRun, container: str) -> str:
        return f"{self.prefix}-{run.name}-{container}"[:128]

    def _image(self, ref: str) -> str | None:
        from docker.errors import ImageNotFound

        for candidate in (ref, ref.partition("@")[2]):
            if not candidate:
                continue
            try:
                return str(self.client.images.get(candidate).id)
            except ImageNotFound:
                continue
        return None

    def _volume_dirs(self, run: _PodRun) -> dict[str, Path]:
        """Host directories standing for the pod's volumes (unsupported kinds raise ValueError)."""
        namespace = run.pod["metadata"]["namespace"]
        root = self.workdir / run.pod["metadata"]["uid"]
        group = (run.pod["spec"].get("securityContext") or {}).get("fsGroup")
        dirs: dict[str, Path] = {}
        for volume in run.pod["spec"].get("volumes") or []:
            path = root / volume["name"]
            path.mkdir(parents=True, exist_ok=True)
            if "emptyDir" in volume:
                path.chmod(0o777)
            elif any(kind in volume for kind in ("configMap", "secret", "projected")):
                files, mode = self._volume_files(namespace, volume)
                self._write(path, files, mode)
            else:
                raise ValueError(f"volume {volume['name']}: only emptyDir, configMap, secret and projected "
                                 "volumes run on the test kubelet")
            if group is not None and "emptyDir" not in volume:  # the files belong to the pod's group
                for item in path.rglob("*"):
                    os.chown(item, -1, int(group))
            dirs[volume["name"]] = path
        return dirs

    def _volume_files(self, namespace: str, volume: dict[str, Any]) -> tuple[dict[str, bytes], int]:
        """The files of a configMap, secret or projected volume (relative path -> content) and their mode."""
        if "configMap" in volume:
            return self._data("ConfigMap", namespace, volume["configMap"]), 0o644
        if "secret" in volume:
            source = {"name": volume["secret"]["secretName"], "items": volume["secret"].get("items")}
            return self._data("Secret", namespace, source), int(volume["secret"].get("defaultMode", 0o644))
        files: dict[str, bytes] = {}
        for source in volume["projected"]["sources"]:
            kind = "Secret" if "secret" in source else "ConfigMap"
            files.update(self._data(kind, namespace, source.get("secret") or source["configMap"]))
        return files, int(volume["projected"].get("defaultMode", 0o644))

    def _sync_volumes(self, run: _PodRun) -> None:
        """Swap in the files of a Secret or ConfigMap that changed since the pod started (module docstring)."""
        namespace = run.pod["metadata"]["namespace"]
        group = (run.pod["spec"].get("securityContext") or {}).get("fsGroup")
        for volume in run.pod["spec"].get("volumes") or []:
            path = run.volume_dirs.get(volume["name"])
            if path is None or not any(kind in volume for kind in ("configMap", "secret", "projected")):
                continue
            try:
                files, mode = self._volume_files(namespace, volume)
            except LookupError:  # deleted meanwhile: the kubelet keeps the files it has
                continue
            for relative, content in files.items():
                target = path / relative
                if target.is_file() and target.read_bytes() == content:
                    continue
                staged = target.with_name(f".{target.name}.new")
                self._write(path, {str(staged.relative_to(path)): content}, mode)
                if group is not None:
                    os.chown(staged, -1, int(group))
                os.replace(staged, target)  # a new inode: what a reader's stat() sees change

    def _data(self, kind: str, namespace: str, source: dict[str, Any]) -> dict[str, bytes]:
        obj = self.read_object(kind, namespace, source["name"])
        if obj is None:
            raise LookupError(f"{kind} {source['name']} not found")
        raw = obj.get("data") or {}
        values = {k: base64.b64decode(v) if kind == "Secret" else str(v).encode() for k, v in raw.items()}
        items = source.get("items")
        return {item["path"]: values[item["key"]] for item in items} if items else values

    @staticmethod
    def _write(directory: Path, files: dict[str, bytes], mode: int) -> None:
        for relative, content in files.items():
            target = directory / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            target.chmod(mode)  # as the kubelet sets it (0400 for the store settings)

    def _run_args(self, run: _PodRun, container: dict[str, Any], dirs: dict[str, Path], image: str) -> dict[str, Any]:
        binds: dict[str, dict[str, str]] = {}
        for mount in container.get("volumeMounts") or []:
            host = dirs[mount["name"]] / mount["subPath"] if mount.get("subPath") else dirs[mount["name"]]
            host.mkdir(parents=True, exist_ok=True)
            binds[str(host)] = {"bind": mount["mountPath"], "mode": "ro" if mount.get("readOnly") else "rw"}
        env = {}
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = item["value"]
            elif (item.get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath") == "metadata.name":
                env[item["name"]] = run.name
        args: dict[str, Any] = {
            "image": image, "name": self._container_name(run, container["name"]), "detach": True,
            "environment": env, "volumes": binds, "labels": {LABEL: self.prefix},
            "working_dir": container.get("workingDir"),
        }
        context = run.pod["spec"].get("securityContext") or {}
        if "runAsUser" in context:
            args["user"] = f"{context['runAsUser']}:{context.get('runAsGroup', context['runAsUser'])}"
        if "fsGroup" in context:
            args["group_add"] = [str(context["fsGroup"])]
        if container.get("command"):
            args["entrypoint"] = container["command"]
        if container.get("args"):
            args["command"] = container["args"]
        memory = ((container.get("resources") or {}).get("limits") or {}).get("memory")
        if memory:
            args["mem_limit"] = args["memswap_limit"] = _mem_bytes(memory)
        return args

    def _run(self, args: dict[str, Any]) -> Any:
        """Create and start a container (joined to :attr:`network` before it starts)."""
        if self.network is None:
            return self.client.containers.run(**args)
        args = {k: v for k, v in args.items() if k != "detach"}
        container = self.client.containers.create(**args)
        self.client.networks.get(self.network).connect(container)
        container.start()
        return container

    def _start(self, run: _PodRun) -> None:
        from docker.errors import DockerException

        spec = run.pod["spec"]
        try:
            dirs = self._volume_dirs(run)
        except (ValueError, LookupError) as exc:
            with run.lock:
                run.waiting = ("CreateContainerConfigError", str(exc))
            return
        images = {c["name"]: self._image(c["image"]) for c in [*spec.get("initContainers", []), *spec["containers"]]}
        missing = [name for name, image in images.items() if image is None]
        if missing:
            with run.lock:
                run.waiting = ("ImagePullBackOff", f"Back-off pulling image of container {missing[0]}")
            return
        try:
            for init in spec.get("initContainers") or []:
                container = self._run(self._run_args(run, init, dirs, str(images[init["name"]])))
                code = int(container.wait(timeout=600).get("StatusCode", 1))
                self._copy_log(run, container)
                with run.lock:
                    run.init_statuses.append({"name": init["name"], "image": init["image"], "imageID": "",
                                              "ready": code == 0, "restartCount": 0, "state": {"terminated": {
                                                  "exitCode": code, "reason": "Completed" if code == 0 else "Error"}}})
                    if code != 0:
                        run.phase = "Failed"
                        return
            main = spec["containers"][0]
            container = self._run(self._run_args(run, main, dirs, str(images[main["name"]])))
            with run.lock:
                run.main_id = container.id
                run.phase = "Running"
                run.volume_dirs = dirs
        except DockerException as exc:
            with run.lock:
                run.failure = ("StartError", str(exc).splitlines()[0])

    # ------------------------------------------------------------------ observing

    def _copy_log(self, run: _PodRun, container: Any) -> None:
        text = container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
        self.set_log(run.pod["metadata"]["namespace"], run.name, text)

    def _observe(self, run: _PodRun) -> None:
        from docker.errors import DockerException

        if run.main_id is None or run.phase in ("Succeeded", "Failed"):
            return
        try:
            container = self.client.containers.get(run.main_id)
        except DockerException:
            return
        now = time.monotonic()
        if now >= run.next_log:
            run.next_log = now + LOG_EVERY
            self._copy_log(run, container)
        if now >= run.next_volume_sync:
            run.next_volume_sync = now + VOLUME_SYNC
            self._sync_volumes(run)
        state = container.attrs["State"]
        if run.restart_at is not None:
            if now >= run.restart_at:
                run.restart_at = None
                run.restarts += 1
                container.restart()
            return
        if state["Status"] == "exited":
            self._copy_log(run, container)
            if run.pod["spec"].get("restartPolicy", "Always") == "Always":  # the API server's default
                run.ready = False
                run.last_exit = {"exitCode": state["ExitCode"],
                                 "reason": "OOMKilled" if state.get("OOMKilled") else "Error"}
                run.restart_at = now + min(BACKOFF * 2 ** run.restarts, 300.0)
                return
            run.phase = "Succeeded" if state["ExitCode"] == 0 else "Failed"
            run.ready = False
            return
        probe = run.pod["spec"]["containers"][0].get("readinessProbe")
        if probe is None:
            run.ready = state["Status"] == "running"
        elif now >= run.next_probe:
            run.next_probe = now + float(probe.get("periodSeconds", 10))
            run.ready = self._probe(run, container, probe)

    def _port(self, run: _PodRun, port: Any) -> int:
        if isinstance(port, int):
            return port
        for item in run.pod["spec"]["containers"][0].get("ports") or []:
            if item.get("name") == port:
                return int(item["containerPort"])
        raise ValueError(f"unknown port {port!r}")

    def _probe(self, run: _PodRun, container: Any, probe: dict[str, Any]) -> bool:
        host = self.address_of(container.attrs)
        if not host:
            return False
        timeout = float(probe.get("timeoutSeconds", 1))
        if "httpGet" in probe:
            get = probe["httpGet"]
            scheme = str(get.get("scheme", "HTTP")).lower()  # HTTPS: not verified, as the kubelet does
            url = f"{scheme}://{host}:{self._port(run, get['port'])}{get.get('path', '/')}"
            context = ssl._create_unverified_context() if scheme == "https" else None
            try:
                with urllib.request.urlopen(url, timeout=timeout, context=context) as answer:
                    return 200 <= answer.status < 400
            except (urllib.error.URLError, OSError):
                return False
        try:
            with socket.create_connection((host, self._port(run, probe["tcpSocket"]["port"])), timeout=timeout):
                return True
        except OSError:
            return False

    def _status(self, run: _PodRun) -> dict[str, Any]:
        pod = run.pod
        main = pod["spec"]["containers"][0]
        status: dict[str, Any] = {"phase": run.phase}
        if run.init_statuses:
            status["initContainerStatuses"] = list(run.init_statuses)
        if run.failure is not None:
            status.update(phase="Failed", reason=run.failure[0], message=run.failure[1])
            return status
        base = {"name": main["name"], "image": main["image"], "imageID": "", "restartCount": run.restarts}
        if run.waiting is not None:
            status["containerStatuses"] = [dict(base, ready=False, state={"waiting": {
                "reason": run.waiting[0], "message": run.waiting[1]}})]
            return status
        if run.main_id is None:
            return status
        attrs = self.client.containers.get(run.main_id).attrs
        state = attrs["State"]
        if run.phase in ("Succeeded", "Failed"):
            reason = "OOMKilled" if state.get("OOMKilled") else ("Completed" if state["ExitCode"] == 0 else "Error")
            status["containerStatuses"] = [dict(base, ready=False, state={"terminated": {
                "exitCode": state["ExitCode"], "reason": reason}})]
            return status
        if run.last_exit is not None:
            base["lastState"] = {"terminated": dict(run.last_exit)}
        if run.restart_at is not None:
            status["containerStatuses"] = [dict(base, ready=False, state={"waiting": {
                "reason": "CrashLoopBackOff", "message": f"back-off restarting failed container {main['name']}"}})]
            status.update(conditions=[{"type": "Ready", "status": "False"},
                                      {"type": "ContainersReady", "status": "False"}])
            return status
        flag = "True" if run.ready else "False"
        status.update(podIP=self.address_of(attrs), conditions=[{"type": "Ready", "status": flag},
                                                                 {"type": "ContainersReady", "status": flag}])
        status["containerStatuses"] = [dict(base, ready=run.ready, state={"running": {
            "startedAt": state.get("StartedAt", "")[:19] + "Z"}})]
        return status

    @staticmethod
    def address_of(attrs: dict[str, Any]) -> str:
        return str(attrs["NetworkSettings"].get("IPAddress") or "")

    def _remove(self, run: _PodRun) -> None:
        from docker.errors import DockerException

        spec = run.pod["spec"]
        names = [self._container_name(run, c["name"]) for c in [*spec.get("initContainers", []), *spec["containers"]]]
        grace = int(spec.get("terminationGracePeriodSeconds", 30))
        for attempt in range(2):  # again after a start in progress finished: it may have created one more
            for name in names:
                try:
                    container = self.client.containers.get(name)
                    if attempt == 0 and container.status == "running":
                        container.stop(timeout=grace)  # SIGTERM, SIGKILL after the grace period
                    container.remove(force=True)
                except DockerException:
                    pass
            if attempt == 0 and run.thread is not None:
                run.thread.join(60)
        shutil.rmtree(self.workdir / run.pod["metadata"]["uid"], ignore_errors=True)


__all__ = ["LABEL", "DockerKubelet"]
