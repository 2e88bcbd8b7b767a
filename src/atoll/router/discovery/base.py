"""The discovery plug point: where the replicas of a deployment are.

One small interface and one module per backend (``local``, ``dns``), picked by
name through :func:`atoll.router.discovery.get_discovery`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from atoll._http.proxy import Upstream

#: A replica the router may forward to: ``Replica(name, host, port)``.
Replica = Upstream


class Discovery(ABC):
    """Finds the healthy replicas of a deployment.

    Names given to a backend have already been checked against the naming
    rule by the router, so a backend may build paths or host names from them.
    """

    @abstractmethod
    async def replicas(self, project: str, deployment: str) -> list[Replica]:
        """The healthy replicas of ``deployment`` of ``project``, in a stable order.

        An empty list means the deployment exists but has no healthy replica
        (the router answers 503).

        Raises:
            NotFoundError: the project or the deployment is unknown; the message
                names which one.
            BackendUnavailableError: the source of truth cannot be read now.
        """

    def cached(self, project: str, deployment: str) -> list[Replica] | None:
        """The replicas when known without waiting (the router's fast path), else None.

        A backend whose answer is at hand (a cache, a file) returns it, or
        raises like :meth:`replicas`; None makes the router await :meth:`replicas`.
        """
        return None

    def close(self) -> None:
        """Release what the backend holds (default: nothing)."""


__all__ = ["Discovery", "Replica"]
