"""Layered, validated configuration.

Layers, later wins: packaged ``resources/atoll.yaml`` < ``$ATOLL_HOME/atoll.yaml``
(``~/.atoll`` by default) < ``./atoll.yaml`` < ``ATOLL_<SECTION>__<KEY>``
environment variables. Unknown keys and wrong types are errors naming the key.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator
from pydantic import ValidationError as PydanticValidationError

from atoll.errors import AtollError, ConfigError, UsageError

DEFAULTS = Path(__file__).parent / "resources" / "atoll.yaml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProjectSection(_Section):
    working_project: str | None = None


class LoggerSection(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"
    # Log files: every command's logs go there when set; `-b/--background` always
    # writes there (default <ATOLL_HOME>/logs), output included, nothing on the terminal.
    directory: str | None = None
    file_name: str = "atoll.log"
    max_bytes: int = Field(default=1024 * 1024, ge=0)  # rotate past this size (0: never)
    backup_count: int = Field(default=1, ge=0)  # rotated files kept: atoll.log.1 ... .N

    @model_validator(mode="before")
    @classmethod
    def _warn_is_warning(cls, data: Any) -> Any:
        """``WARN``, as the modelled framework spells it, is WARNING; level names in any case."""
        if isinstance(data, dict) and isinstance(data.get("level"), str):
            level = data["level"].upper()
            data = {**data, "level": "WARNING" if level == "WARN" else level}
        return data

    @model_validator(mode="after")
    def _plain_file_name(self) -> LoggerSection:
        if not self.file_name or "/" in self.file_name or self.file_name in (".", ".."):
            raise ValueError(f"logger.file_name {self.file_name!r}: a file name, not a path")
        return self


class MetadataSection(_Section):
    url: str | None = None
    native: bool = False
    tchest: str | None = None
    # Files up to this size may be kept in the metadata database (--lightweight).
    lightweight_max_mb: float = Field(default=16, gt=0)


class FileStoreSection(_Section):
    type: str = "local"
    path: str | None = None
    url: str | None = None
    bucket: str = "atoll"
    repository: str | None = None
    region: str = "us-east-1"
    native: bool = False
    tchest: str | None = None
    # Artifactory / Nexus: scheme for a url given as host:port, TLS checks. The
    # tchest holds user/password, or an API key/token with an empty user.
    use_ssl: bool = False
    check_certificate: bool = True
    ca_bundle: str | None = None
    # The digest new stored files are recorded with (files recorded with the other are still
    # verified with theirs): blake3 hashes faster than a copy; sha256 for tools that need it.
    digest: Literal["blake3", "sha256"] = "blake3"


class HealthcheckSection(_Section):
    interval: float = 2
    timeout: float = 2
    retries: int = 3
    start_period: float = 60
    #: Local runtime: seconds a live replica may stay unhealthy (since its last good answer)
    #: before its supervisor restarts it; 0: never. Swarm and Kubernetes replace it after ``retries``.
    unhealthy_after: float = Field(default=30, ge=0)


class AutoScale(_Section):
    """Horizontal autoscaling of a deployment (Kubernetes: a HorizontalPodAutoscaler)."""

    min_replicas: int = Field(default=1, ge=1)
    max_replicas: int = Field(ge=1)
    target_cpu: int = Field(default=80, ge=1, le=100)  # % of the cpu request

    @model_validator(mode="after")
    def _bounds(self) -> AutoScale:
        if self.max_replicas < self.min_replicas:
            raise ValueError("max_replicas must be >= min_replicas")
        return self


class ResourceProfile(_Section):
    """Requests/limits of a task: cpu in cores, memory in MB, gpu count."""

    cpu_request: float | None = None
    cpu_limit: float | None = None
    memory_request: int | None = None
    memory_limit: int | None = None
    gpu: int = 0
    auto_scale: AutoScale | None = None

    @model_validator(mode="after")
    def _scaling_needs_cpu_request(self) -> ResourceProfile:
        # CPU utilisation is measured against the request: without one the autoscaler never acts.
        if self.auto_scale is not None and self.cpu_request is None:
            raise ValueError("auto_scale needs cpu_request (utilisation is a share of the request)")
        return self


class NfsVolume(_Section):
    server: str
    path: str


class KubernetesSection(_Section):
    """How the ``kubernetes`` manager reaches its cluster and what it creates there.

    ``kubeconfig``/``context`` pick the cluster (the usual ``~/.kube/config`` and
    its current context when unset; the pod's service account when Atoll runs
    inside the cluster). Tasks run in ``container_manager.namespace``.
    """

    kubeconfig: str | None = None
    context: str | None = None
    in_cluster: bool = False
    create_namespace: bool = True
    storage_class: str | None = None  # of the islands' volume claims (cluster default when unset)
    nfs: NfsVolume | None = None  # inputs staged on this NFS export instead of an emptyDir
    inputs_claim: str | None = None  # ... or on this existing PersistentVolumeClaim
    service_type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    image_pull_secret: str | None = None  # treasure chest holding the registry's user/password
    job_ttl_seconds: int = Field(default=3600, ge=0)  # ttlSecondsAfterFinished of training Jobs
    island_volume_mb: int = Field(default=10240, ge=1)  # size of the db/files islands' claims


class ContainerManagerSection(_Section):
    type: str = "local"
    api_timeout: float = 60
    namespace: str = "atoll"
    # host: Atoll stages a task's inputs on the host; fetch: the task fetches them
    # from the file store itself. None: the manager's default (local: host).
    staging: Literal["host", "fetch"] | None = None
    healthcheck: HealthcheckSection = Field(default_factory=HealthcheckSection)
    #: Upper bound of a deployment's replicas (``depl new -n``, a profile's ``auto_scale.max_replicas``).
    max_replicas: int = Field(default=32, ge=1)
    resource_profiles: dict[str, ResourceProfile] = Field(default_factory=dict)
    train_profile: str | None = None
    deploy_profile: str | None = None
    ide_profile: str | None = None
    kubernetes: KubernetesSection = Field(default_factory=KubernetesSection)
    #: Noronha projects run unchanged: ``FROM noronhadataops/noronha`` builds on the base image and
    #: tasks can ``import noronha`` (README, Coming from Noronha). False: both refused.
    noronha_compat: bool = True

    def profile(self, task: Literal["train", "deploy", "ide"]) -> ResourceProfile | None:
        """The resource profile that ``<task>_profile`` names; None when it names none.

        Raises:
            ConfigError: ``<task>_profile`` is not a key of ``resource_profiles``.
        """
        name = getattr(self, f"{task}_profile")
        if not name:
            return None
        return self._lookup_profile(
            name, ConfigError, f"container_manager.{task}_profile {name!r} is not a resource profile")

    def pick_profile(
        self, task: Literal["train", "deploy", "ide"], name: str | None = None
    ) -> tuple[str | None, ResourceProfile | None]:
        """``(name, profile)`` of a task: the one ``--resource-profile`` names, else ``<task>_profile``'s.

        Raises:
            UsageError: ``name`` is not a key of ``resource_profiles`` (the message lists them).
            ConfigError: ``<task>_profile`` names no resource profile.
        """
        if name is None:
            return getattr(self, f"{task}_profile") or None, self.profile(task)
        return name, self.named_profile(name)

    def named_profile(self, name: str) -> ResourceProfile:
        """The resource profile ``name`` (``--resource-profile``).

        Raises:
            UsageError: no such profile (the message lists the defined ones).
        """
        return self._lookup_profile(name, UsageError, f"--resource-profile {name!r}: not one of "
                                                      "container_manager.resource_profiles")

    def _lookup_profile(self, name: str, error: type[AtollError], message: str) -> ResourceProfile:
        """``resource_profiles[name]``, else ``error(message + the defined names)``."""
        profile = self.resource_profiles.get(name)
        if profile is None:
            known = ", ".join(sorted(self.resource_profiles)) or "none"
            raise error(f"{message} (defined: {known})")
        return profile


class DockerSection(_Section):
    daemon_address: str | None = None
    python_image: str = "python:3.11-slim"
    target_registry: str | None = None
    registry_secret: str | None = None


class RouterSection(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=30080, ge=1, le=65535)
    #: Require an API key (``atoll key new``) on every prediction; ``off`` only on a laptop.
    auth: bool = True
    #: Router tasks (swarm) / pods (Kubernetes) behind the published port: with 2, a killed router
    #: leaves the other serving while it is replaced. The local router is one supervised process.
    replicas: int = Field(default=2, ge=1, le=16)
    #: HTTPS: the certificate (PEM, chain first) and its private key; both or neither.
    tls_cert: str | None = None
    tls_key: str | None = None

    @model_validator(mode="after")
    def _tls_pair(self) -> RouterSection:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("set both router.tls_cert and router.tls_key (or neither)")
        return self

    @property
    def tls(self) -> bool:
        """True when the router serves HTTPS."""
        return bool(self.tls_cert and self.tls_key)

    @property
    def url(self) -> str:
        """Where clients reach the router: ``http(s)://host:port``."""
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"


#: The replica secrets file's name, in the router keys directory.
REPLICA_SECRETS_FILE = "replica-secrets.json"


class ServingSection(_Section):
    """Limits of the replicas' and the ``--port`` balancer's HTTP server (see README, Security)."""

    max_body_mb: float = Field(default=16, gt=0, le=4096)
    max_header_kb: int = Field(default=64, ge=1, le=1024 * 1024)
    header_timeout: float = Field(default=10, gt=0, le=3600)
    body_timeout: float = Field(default=60, gt=0, le=3600)
    max_connections: int = Field(default=1000, ge=1, le=1_000_000)

    def limits(self) -> dict[str, Any]:
        """The limits as the server takes them (``max_body`` and :class:`atoll._http.server.Limits`' fields)."""
        return {
            "max_body": int(self.max_body_mb * 1024 * 1024),
            "max_header_bytes": self.max_header_kb * 1024,
            "header_timeout": self.header_timeout,
            "body_timeout": self.body_timeout,
            "max_connections": self.max_connections,
        }


class UiSection(_Section):
    """Where ``atoll ui`` and the ui island listen (loopback unless configured)."""

    host: str = "127.0.0.1"
    port: int = Field(default=30090, ge=0, le=65535)

    @property
    def url(self) -> str:
        """Where a browser on this host reaches the UI: ``http://host:port`` (an IPv6 host in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


class IdeSection(_Section):
    port: int = Field(default=30088, ge=1, le=65535)


class IslandsSection(_Section):
    """Where the native islands (swarm services) are published on this host.

    Ports are published ``mode=host`` (dockerd binds them to its default
    address, 127.0.0.1 here); ``host`` is the address clients use to reach them.
    The registry island uses the port of ``docker.target_registry`` when that
    names a loopback address, else ``registry_port``.
    """

    host: str = "127.0.0.1"
    db_port: int = Field(default=30432, ge=1, le=65535)
    files_port: int = Field(default=30900, ge=1, le=65535)
    registry_port: int = Field(default=30500, ge=1, le=65535)
    setup_timeout: float = Field(default=180, gt=0)


class Config(_Section):
    """The effective configuration."""

    model_config = ConfigDict(extra="forbid", ignored_types=(cached_property,))

    project: ProjectSection = Field(default_factory=ProjectSection)
    logger: LoggerSection = Field(default_factory=LoggerSection)
    metadata: MetadataSection = Field(default_factory=MetadataSection)
    file_store: FileStoreSection = Field(default_factory=FileStoreSection)
    container_manager: ContainerManagerSection = Field(default_factory=ContainerManagerSection)
    docker: DockerSection = Field(default_factory=DockerSection)
    router: RouterSection = Field(default_factory=RouterSection)
    serving: ServingSection = Field(default_factory=ServingSection)
    ide: IdeSection = Field(default_factory=IdeSection)
    ui: UiSection = Field(default_factory=UiSection)
    islands: IslandsSection = Field(default_factory=IslandsSection)

    _home: Path | None = PrivateAttr(default=None)

    @property
    def home(self) -> Path:
        """ATOLL_HOME as seen when the config was loaded."""
        return self._home or atoll_home()

    @property
    def metadata_url(self) -> str:
        return self.metadata.url or f"sqlite:///{self.home / 'atoll.db'}"

    @property
    def router_keys_file(self) -> Path:
        """The API keys file the router reads (written by ``atoll key new/rm``), in its own
        directory so that a container can mount the directory and see every rewrite."""
        return self.home / "run" / "router-keys" / "keys.json"

    @property
    def router_replica_secrets_file(self) -> Path:
        """Each deployment's replica secret (written by ``atoll depl new/rm``), next to the keys file."""
        return self.router_keys_file.parent / REPLICA_SECRETS_FILE

    @property
    def log_dir(self) -> Path:
        """Where log files go: ``logger.directory``, else ``$ATOLL_HOME/logs``."""
        return Path(self.logger.directory).expanduser() if self.logger.directory else self.home / "logs"

    def log_file_handler(self, file_name: str | None = None) -> logging.Handler:
        """A handler appending to ``log_dir/file_name`` (default ``logger.file_name``), rotated at
        ``logger.max_bytes`` keeping ``logger.backup_count`` files; the directory is made 0700.

        Raises:
            ConfigError: the directory or the file cannot be created or opened.
        """
        path = self.log_dir / (file_name or self.logger.file_name)
        return rotating_file_handler(path, self.logger.max_bytes, self.logger.backup_count)

    @property
    def file_store_path(self) -> Path:
        return Path(self.file_store.path) if self.file_store.path else self.home / "files"

    def masked(self) -> dict[str, Any]:
        """The config as a dict with credentials in URLs masked."""
        data = self.model_dump(mode="json")
        url = data["metadata"].get("url")
        if url:
            data["metadata"]["url"] = mask_url(url)
        return data


class _PrivateLogFile(logging.handlers.RotatingFileHandler):
    """Log files (and their rotated copies) readable by their owner only: output may hold URLs with tokens."""

    def _open(self) -> Any:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return open(fd, "a", encoding=self.encoding, errors=self.errors)


def rotating_file_handler(path: Path, max_bytes: int, backup_count: int) -> logging.Handler:
    """A handler appending to ``path`` (0600; its directory made 0700), rotated past ``max_bytes``
    (0: never) keeping ``backup_count`` older files.

    Raises:
        ConfigError: the directory or the file cannot be created or opened.
    """
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        handler = _PrivateLogFile(path, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"logger.directory: cannot write the log file {path}: {exc.strerror}") from exc
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    return handler


def atoll_home() -> Path:
    """``$ATOLL_HOME`` or ``~/.atoll``."""
    return Path(os.environ.get("ATOLL_HOME") or Path.home() / ".atoll").expanduser()


def mask_url(url: str) -> str:
    """Hide the password part of ``scheme://user:password@host``."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}".splitlines()[0]) from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return data


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _env_layer(environ: dict[str, str]) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith("ATOLL_") or "__" not in name:
            continue
        path = [p.lower() for p in name[len("ATOLL_"):].split("__")]
        node = layer
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = yaml.safe_load(raw) if raw else None
    return layer


def load_config(cwd: Path | None = None, environ: dict[str, str] | None = None) -> Config:
    """Build the effective config from every layer and validate it.

    Raises:
        ConfigError: a layer is unreadable, or a key is unknown or mistyped
            (the message names the key path and the file or variable).
    """
    environ = dict(os.environ if environ is None else environ)
    layers: list[tuple[str, dict[str, Any]]] = [(str(DEFAULTS), _read_yaml(DEFAULTS))]
    home = Path(environ.get("ATOLL_HOME") or Path.home() / ".atoll").expanduser()
    for path in (home / "atoll.yaml", (cwd or Path.cwd()) / "atoll.yaml"):
        if path.is_file():
            layers.append((str(path), _read_yaml(path)))
    layers.append(("environment", _env_layer(environ)))
    merged: dict[str, Any] = {}
    for source, data in layers:
        merged = _merge(merged, data)
        try:
            Config.model_validate(merged)
        except PydanticValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"config {source}: {key}: {err['msg']}") from exc
    config = Config.model_validate(merged)
    config._home = home
    return config
