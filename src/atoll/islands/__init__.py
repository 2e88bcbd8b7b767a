"""Islands: the services Atoll runs next to the tasks (``atoll isle <name> build|setup|status|stop``).

One abstraction, :class:`~atoll.islands.base.Island`; which class runs island
``name`` on container manager ``type`` is an entry ``"<name>@<type>"`` of
:data:`ISLANDS` (an :mod:`atoll._registry` table: import path + install hint)::

    router     a local process (local) | the swarm service <ns>-router (swarm)
    ui         the web UI (``atoll ui``) as a local process (local) | the swarm service <ns>-isle-ui (swarm)
    db         PostgreSQL, the metadata store when metadata.native      } swarm services
    files      an S3 server, the file store when file_store.native      } (also from the
    registry   a Docker registry, for docker.target_registry on loopback } local runtime)

On ``kubernetes`` (alias ``kube``) router, db, files and ui are objects in the
cluster (:mod:`atoll.islands.kubernetes`); the registry island is not.

The db, files and registry islands need a swarm-mode Docker engine, not the
swarm container manager, so they are registered for ``local`` too. Another
manager adds its runners with entries of its own, e.g.::

    ISLANDS.register(island_key("router", "nomad"), Backend("my_plugin.islands:NomadRouterIsland"))
"""

from __future__ import annotations

from atoll._registry import Backend, Registry
from atoll.config import Config
from atoll.errors import NotFoundError, UsageError
from atoll.islands.base import Island, IslandStatus

_DOCKER = "pip install 'atoll[docker]'"
_KUBE = "pip install 'atoll[kubernetes,docker]'"
_KUBE_ISLANDS = {name: Backend(f"atoll.islands.kubernetes:Kube{name.title()}Island", _KUBE)
                 for name in ("db", "files", "ui")} | {
    "router": Backend("atoll.islands.kube_router:KubeRouterIsland", _KUBE)}
_SWARM_SERVICES = {
    "db": Backend("atoll.islands.db:DbIsland", _DOCKER),
    "files": Backend("atoll.islands.files:FilesIsland", "pip install 'atoll[docker,s3]'"),
    "registry": Backend("atoll.islands.registry:RegistryIsland", _DOCKER),
}


def island_key(name: str, manager: str) -> str:
    """The registry key of island ``name`` on container manager ``manager``."""
    return f"{name}@{manager}"


ISLANDS: Registry[Island] = Registry(
    "island",
    {
        island_key("router", "local"): Backend("atoll.islands.router:LocalRouterIsland"),
        island_key("router", "swarm"): Backend("atoll.islands.router_swarm:SwarmRouterIsland", _DOCKER),
        island_key("ui", "local"): Backend("atoll.islands.ui:LocalUiIsland", "pip install 'atoll[ui]'"),
        island_key("ui", "swarm"): Backend("atoll.islands.ui:SwarmUiIsland", "pip install 'atoll[docker,ui]'"),
        **{island_key(name, manager): backend for name, backend in _SWARM_SERVICES.items()
           for manager in ("local", "swarm")},
        **{island_key(name, manager): backend for name, backend in _KUBE_ISLANDS.items()
           for manager in ("kubernetes", "kube")},
    },
)


def island_names() -> list[str]:
    """Every island some container manager runs, sorted."""
    return sorted({key.partition("@")[0] for key in ISLANDS.names()})


def island_available(name: str, manager: str) -> bool:
    """True when container manager ``manager`` has a runner for island ``name``."""
    return island_key(name, manager) in ISLANDS.names()


def get_island(config: Config, name: str) -> Island:
    """The island ``name`` for the configured container manager.

    Raises:
        NotFoundError: no island of that name.
        UsageError: the island does not exist on this runtime (yet).
        ConfigError: its runner needs a missing dependency (the message gives the install hint).
    """
    if name not in island_names():
        raise NotFoundError(f"no island {name!r}; islands: {', '.join(island_names())}")
    manager = config.container_manager.type
    if not island_available(name, manager):
        raise UsageError(f"the {name} island is not available on the {manager!r} runtime")
    return ISLANDS.load(island_key(name, manager))(config)


__all__ = ["ISLANDS", "Island", "IslandStatus", "get_island", "island_available", "island_key", "island_names"]
