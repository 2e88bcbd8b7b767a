"""Islands: the services Atoll runs next to the tasks (``atoll isle <name> build|setup|status|stop``).

Thin: which island runs how is :mod:`atoll.islands` (one ``Island``
abstraction, picked by name × container manager through its registry).
"""

from __future__ import annotations

import logging

from atoll.api.context import AtollContext
from atoll.api.keys import export_keys
from atoll.containers.base import LogSink
from atoll.islands import Island, IslandStatus, get_island, island_available, island_names

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


def setup_island(ctx: AtollContext, name: str) -> IslandStatus:
    found = island(ctx, name)
    if name == "router":
        _router_keys(ctx)
    return found.setup()


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
