"""Discovery backends, by name (``--discovery NAME``).

Each backend lives in its own module and is imported only when chosen.
"""

from __future__ import annotations

from typing import Any

from atoll._registry import Backend, Registry
from atoll.errors import ConfigError
from atoll.router.discovery.base import Discovery, Replica

#: Discovery backends by name, imported only when chosen.
DISCOVERIES: Registry[Discovery] = Registry(
    "router discovery",
    {
        "dns": Backend("atoll.router.discovery.dns:DnsDiscovery"),
        "local": Backend("atoll.router.discovery.local:LocalDiscovery"),
    },
)


def get_discovery(name: str, **options: Any) -> Discovery:
    """Build the discovery backend called ``name`` with ``options``.

    Raises:
        ConfigError: no backend has that name, or it rejects the options.
    """
    cls = DISCOVERIES.load(name)
    try:
        return cls(**options)
    except TypeError as exc:
        raise ConfigError(f"discovery {name!r} does not accept these options: {exc}") from exc


__all__ = ["DISCOVERIES", "Discovery", "Replica", "get_discovery"]
