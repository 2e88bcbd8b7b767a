"""Islands: the services Atoll runs next to the tasks (``atoll isle <name> build|setup|status|stop``).

Thin: which island runs how is :mod:`atoll.islands` (one ``Island``
abstraction, picked by name × container manager through its registry).
"""

from __future__ import annotations

import logging

import yaml

from atoll.api.context import AtollContext
from atoll.api.keys import export_keys
from atoll.containers.base import LogSink
from atoll.errors import ConfigError, UsageError
from atoll.islands import Island, IslandStatus, get_island, island_available, island_names
from atoll.islands.router_tls import self_signed_pair

log = logging.getLogger(__name__)


def island(ctx: AtollContext, name: str) -> Island:
    """The island ``name`` on the configured container manager.

    Raises:
        NotFoundError: no island of that name.
        UsageError: the island does not exist on this runtime (yet).
    """
    return get_island(ctx.config, name)


def available(ctx: AtollContext, name: str) -> bool:
    """True when the configured container manager runs island ``name``."""
    return island_available(name, ctx.config.container_manager.type)


def build_island(ctx: AtollContext, name: str, log: LogSink) -> IslandStatus:
    """Prepare what the island's setup needs (its image), so it can be done up front."""
    return island(ctx, name).build(log)


def setup_island(
    ctx: AtollContext, name: str, self_signed: bool = False, resource_profile: str | None = None
) -> IslandStatus:
    """Start island ``name`` unless it runs.

    Args:
        self_signed: the router only: make (or reuse) a self-signed certificate under
            ``$ATOLL_HOME/tls/``, set ``router.tls_cert``/``tls_key`` in ``$ATOLL_HOME/atoll.yaml``
            and serve HTTPS with it; the status's ``ca_file`` is what clients trust.
        resource_profile: a key of ``container_manager.resource_profiles`` the island's
            container gets (limits/reservations); an island running with other values is
            re-created (its data stays). Without it a running island keeps what it has.

    Raises:
        UsageError: ``self_signed`` for another island; an unknown profile, or one for an
            island that runs as a process of this host.
    """
    profile = ctx.config.container_manager.named_profile(resource_profile) if resource_profile else None
    if self_signed:
        if name != "router":
            raise UsageError("--self-signed is for the router island only")
        _self_signed(ctx)
    found = island(ctx, name)
    if profile is not None:
        if not found.takes_profile:
            raise UsageError(f"--resource-profile: the {name} island runs as a process of this host here; "
                             "profiles apply to islands run as containers (swarm, kubernetes)")
        found.profile_name, found.profile = resource_profile, profile
    if name == "router":
        _router_keys(ctx)
    status = found.setup()
    if self_signed:
        status.message += f"; clients trust its certificate {ctx.config.router.tls_cert} (curl --cacert)"
    return status


def _self_signed(ctx: AtollContext) -> None:
    """Make the pair, record it in ``$ATOLL_HOME/atoll.yaml`` and in ``ctx.config``."""
    cert, key, _ = self_signed_pair(ctx.config.home, ctx.config.router.host)
    settings = ctx.config.home / "atoll.yaml"
    try:
        data = (yaml.safe_load(settings.read_text()) if settings.is_file() else None) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{settings}: cannot update it: {exc}".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{settings}: the top level must be a mapping of sections")
    router = data.setdefault("router", {}) or {}
    data["router"] = router
    if (router.get("tls_cert"), router.get("tls_key")) != (str(cert), str(key)):
        router.update(tls_cert=str(cert), tls_key=str(key))
        settings.parent.mkdir(parents=True, exist_ok=True)
        settings.write_text(yaml.safe_dump(data, sort_keys=False))
        log.info("router.tls_cert and router.tls_key set in %s", settings)
    ctx.config.router.tls_cert, ctx.config.router.tls_key = str(cert), str(key)


def _router_keys(ctx: AtollContext) -> None:
    """Write the keys file a router about to start reads; warn when auth is off."""
    if ctx.config.router.auth:
        export_keys(ctx)
    else:
        log.warning("router.auth is off: anyone who reaches the router can call every deployment")


def island_status(ctx: AtollContext, name: str) -> IslandStatus:
    return island(ctx, name).status()


def stop_island(ctx: AtollContext, name: str) -> IslandStatus:
    return island(ctx, name).stop()


def ensure_router(ctx: AtollContext) -> IslandStatus | None:
    """Start the router island when the runtime has one and it is not running."""
    if not available(ctx, "router"):
        return None
    return setup_island(ctx, "router")


__all__ = [
    "IslandStatus",
    "available",
    "build_island",
    "ensure_router",
    "island",
    "island_names",
    "island_status",
    "setup_island",
    "stop_island",
]
