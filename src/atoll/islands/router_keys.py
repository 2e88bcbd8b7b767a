"""How the swarm router gets the API keys file and the replica secrets file.

Both files are written on this host, in ``$ATOLL_HOME/run/router-keys/``
(``config.router_keys_file``, ``config.router_replica_secrets_file``), by
``atoll key new/rm`` and ``atoll depl new/rm``. The router service reads them
one of two ways, after the staging rule of the swarm manager
(``container_manager.staging``, else ``host`` while a store is embedded):

- ``host`` staging (the tasks see this host's directories, a single-node swarm):
  the directory is bind-mounted read-only at :data:`KEYS_MOUNT`; the router
  re-reads a rewritten file within a second.
- ``fetch`` staging (nothing of the layout comes from the host; tasks may run on
  any node): each file is a Docker secret named after its content,
  ``<ns>-router-keys-<sha12>`` and ``<ns>-router-replica-secrets-<sha12>``, read
  as ``/run/secrets/router-keys.json`` and ``/run/secrets/router-replica-secrets.json``
  (owned by the router's uid, mode 0400). A writer that changes a file calls
  :func:`atoll.islands.router.refresh_swarm_router`: the service is updated start-first with the new
  secret in place of the old one (the other router task keeps serving), and the
  old secret is removed once the update completed.

Never a secret on a command line, in an environment value, a label or an image.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import orjson
from filelock import FileLock

from atoll.config import REPLICA_SECRETS_FILE, Config, RouterSection
from atoll.errors import ConfigError

if TYPE_CHECKING:
    from docker import DockerClient

#: Where the swarm router sees the API keys directory under host staging (bind-mounted read-only).
KEYS_MOUNT = "/atoll/router-keys"
#: Under fetch staging: the secrets' stems in their names and their files under /run/secrets.
KEYS_SECRET = ("keys", "router-keys.json")
REPLICA_SECRETS_SECRET = ("replica-secrets", "router-replica-secrets.json")
SECRETS_DIR = "/run/secrets"
#: The file names of the TLS pair under /run/secrets in the swarm router.
TLS_SECRETS = ("router-tls.crt", "router-tls.key")
#: The replica secrets document before the first ``depl new`` (the router reads "no secrets").
NO_REPLICA_SECRETS = b'{"version":1,"secrets":{}}'

Delivery = Literal["mount", "secrets"]


def keys_delivery(config: Config) -> Delivery:
    """``secrets`` under fetch staging (any node), ``mount`` under host staging (this host's directory)."""
    from atoll.containers.swarm.manager import swarm_staging

    return "secrets" if swarm_staging(config) == "fetch" else "mount"


def keys_paths(config: Config) -> tuple[Path, Path]:
    """Where the router reads the keys file and the replica secrets file."""
    if keys_delivery(config) == "secrets":
        return Path(SECRETS_DIR) / KEYS_SECRET[1], Path(SECRETS_DIR) / REPLICA_SECRETS_SECRET[1]
    return Path(KEYS_MOUNT) / config.router_keys_file.name, Path(KEYS_MOUNT) / REPLICA_SECRETS_FILE


def keys_documents(config: Config) -> dict[str, tuple[str, bytes]]:
    """Under fetch staging: file name under /run/secrets -> (stem of the secret's name, content).

    Raises:
        ConfigError: auth is on and the keys file is missing or unreadable.
    """
    if keys_delivery(config) != "secrets":
        return {}
    found = {REPLICA_SECRETS_SECRET[1]: (REPLICA_SECRETS_SECRET[0], replica_secrets_document(config))}
    if config.router.auth:
        found[KEYS_SECRET[1]] = (KEYS_SECRET[0], _read(config.router_keys_file, None))
    return found


def replica_secrets_document(config: Config) -> bytes:
    """The deployments' replica secrets file as the router reads it (an empty one before the first ``depl new``).

    Raises:
        ConfigError: the file exists but cannot be read.
    """
    return _read(config.router_replica_secrets_file, NO_REPLICA_SECRETS)


def _read(path: Path, missing: bytes | None) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        if missing is not None:
            return missing
        raise ConfigError(f"the router's API keys file {path} is missing: `atoll isle router setup` writes it "
                          "from the metadata store") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None


def content_name(prefix: str, content: bytes) -> str:
    """``<prefix>-<first 12 hex of sha256(content)>``: a new content is a new secret (secrets are immutable)."""
    return f"{prefix}-{hashlib.sha256(content).hexdigest()[:12]}"


def ingress_check(client: DockerClient, config: Config, run_dir: Path, image: Callable[[], str] | None) -> str | None:
    """Why the swarm's ingress mesh does not work on this engine (None: it does, or ``image`` is None
    and it was not checked yet); see :meth:`atoll.islands.router_swarm.SwarmRouterIsland.ingress_missing`.
    Remembered per swarm."""
    from docker.errors import ContainerError

    from atoll.containers.swarm.engine import engine_errors

    with engine_errors(config, "reading the engine's swarm state"):
        cluster = str(((client.info().get("Swarm") or {}).get("Cluster") or {}).get("ID") or "")
    cache = run_dir / "swarm-ingress.json"
    try:
        known = orjson.loads(cache.read_bytes())
        if isinstance(known, dict) and known.get("cluster") == cluster:
            return known.get("missing") or None
    except (OSError, orjson.JSONDecodeError):
        pass
    if image is None:
        return None
    probe = "import os, sys; sys.exit(0 if os.path.exists('/proc/net/ip_vs') else 3)"
    missing: str | None = None
    with engine_errors(config, "checking the swarm's ingress mesh"):
        try:
            client.containers.run(image(), ["python", "-c", probe], network_mode="host", remove=True,
                                  labels={"io.atoll.kind": "check"})
        except ContainerError as exc:
            missing = ("the swarm's ingress mesh, which this engine lacks (no IPVS in its kernel: "
                       "/proc/net/ip_vs is missing)") if exc.exit_status == 3 else (
                       f"the swarm's ingress mesh, which could not be checked (exit {exc.exit_status})")
    run_dir.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(orjson.dumps({"cluster": cluster, "missing": missing}))
    return missing


def router_lock(config: Config) -> FileLock:
    """Held while the router service is created, updated or its secrets pruned (one at a time)."""
    (config.home / "run").mkdir(parents=True, exist_ok=True)
    return FileLock(str(config.home / "run" / ".swarm-router.lock"))


def auth_options(auth: bool, keys_file: Path, replica_secrets: Path | None = None) -> list[str]:
    """The router's API-key options (the keys file to check against, or ``--auth off``), and the
    replica secrets file (default: next to the keys file, as ``config.router_replica_secrets_file``)."""
    secrets = ["--replica-secrets", str(replica_secrets or keys_file.with_name(REPLICA_SECRETS_FILE))]
    return (["--keys-file", str(keys_file)] if auth else ["--auth", "off"]) + secrets


def tls_options(router: RouterSection, cert: str | None = None, key: str | None = None) -> list[str]:
    """``--tls-cert``/``--tls-key`` when the router serves HTTPS (paths as the router sees them)."""
    if not router.tls:
        return []
    return ["--tls-cert", cert or str(router.tls_cert), "--tls-key", key or str(router.tls_key)]


__all__ = [
    "KEYS_MOUNT",
    "KEYS_SECRET",
    "NO_REPLICA_SECRETS",
    "REPLICA_SECRETS_SECRET",
    "TLS_SECRETS",
    "auth_options",
    "content_name",
    "ingress_check",
    "keys_delivery",
    "keys_documents",
    "keys_paths",
    "replica_secrets_document",
    "router_lock",
    "tls_options",
]
