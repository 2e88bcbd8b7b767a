"""Discovery for Docker Swarm: the replicas are the A records of a service.

A deployment D of project P runs as the Swarm service ``atoll-P-D`` with
``endpoint_mode=dnsrr``; Docker's embedded DNS answers ``tasks.atoll-P-D`` with
one A record per running task. Answers (and NXDOMAIN) are cached ``ttl``
seconds. DNS cannot tell an unknown project from an unknown deployment, so the
404 names the deployment.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable

from atoll.errors import BackendUnavailableError, NotFoundError
from atoll.router.discovery.base import Discovery, Replica

Resolver = Callable[[str, int], Awaitable[list[str]]]

_MISSING = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


async def resolve_ipv4(host: str, port: int) -> list[str]:
    """The IPv4 addresses of ``host`` (through the system resolver, off the event loop)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, family=socket.AF_INET, type=socket.SOCK_STREAM
    )
    return [str(info[4][0]) for info in infos]


class DnsDiscovery(Discovery):
    """Replicas from DNS A records.

    Args:
        pattern: host name template with ``{project}`` and ``{deployment}``.
        port: the replicas' serving port.
        ttl: seconds an answer is reused.
        resolver: ``async (host, port) -> [ip, ...]`` (tests inject one).
    """

    def __init__(
        self,
        pattern: str = "tasks.atoll-{project}-{deployment}",
        port: int = 8080,
        ttl: float = 3.0,
        resolver: Resolver | None = None,
    ) -> None:
        self.pattern = pattern
        self.port = port
        self.ttl = ttl
        self.resolver = resolver or resolve_ipv4
        # (when, replicas) or (when, message of a NotFoundError): NXDOMAIN is cached too.
        self._cache: dict[tuple[str, str], tuple[float, list[Replica] | str]] = {}

    def cached(self, project: str, deployment: str) -> list[Replica] | None:
        cached = self._cache.get((project, deployment))
        if cached is None or time.monotonic() - cached[0] >= self.ttl:
            return None
        if isinstance(cached[1], str):
            raise NotFoundError(cached[1])
        return cached[1]

    async def replicas(self, project: str, deployment: str) -> list[Replica]:
        key = (project, deployment)
        cached = self._cache.get(key)
        now = time.monotonic()
        if cached is not None and now - cached[0] < self.ttl:
            answer = cached[1]
        else:
            answer = await self._lookup(project, deployment)
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[key] = (now, answer)
        if isinstance(answer, str):
            raise NotFoundError(answer)  # a fresh error each time: re-raising one would grow its traceback
        return answer

    async def _lookup(self, project: str, deployment: str) -> list[Replica] | str:
        host = self.pattern.format(project=project, deployment=deployment)
        try:
            addresses = await self.resolver(host, self.port)
        except socket.gaierror as exc:
            if exc.errno in _MISSING:
                return f"no deployment {deployment!r} in project {project!r} ({host} does not resolve)"
            raise BackendUnavailableError(f"cannot resolve {host}: {exc.strerror}") from exc
        except UnicodeError:  # a label longer than 63 characters: no such service can exist
            return f"no deployment {deployment!r} in project {project!r} (name too long for DNS)"
        return [Replica(ip, ip, self.port) for ip in sorted(set(addresses))]


__all__ = ["DnsDiscovery", "resolve_ipv4"]
