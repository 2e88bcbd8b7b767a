"""The island contract: a service Atoll runs next to the tasks.

An island answers four verbs — ``build`` (prepare what ``setup`` needs, such
as its image, so one-time work can happen up front), ``setup`` (start it
unless it runs, wait until it answers), ``status`` and ``stop`` (remove it,
keeping its data) — and reports an :class:`IslandStatus`. Which class runs a
given island on a given container manager is a registry entry
(:data:`atoll.islands.ISLANDS`); the docstrings below are the contract a new
runner (e.g. a Kubernetes one) fulfils.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from atoll.config import Config, ResourceProfile, atoll_home
from atoll.containers.base import LogSink


@dataclass
class IslandStatus:
    """What ``atoll isle <name> setup|status|stop`` reports."""

    name: str
    running: bool
    url: str | None = None  # where clients on this host reach it (no credentials)
    message: str = ""  # one line for a user: what happened / how it is
    health: str | None = None  # healthy | degraded (some of its tasks down) | starting | unhealthy | stopped (None: not probed)
    service: str | None = None  # the service / process the island runs as
    volume: str | None = None  # the data volume that `stop` keeps
    pid: int | None = None  # process islands: the process id
    log: str | None = None  # process islands: the log file
    seconds: float | None = None  # how long setup took (image build included)
    build_seconds: float | None = None  # the part of it spent building an image


class Island(ABC):
    """One service Atoll runs for the user, on one kind of container manager.

    Args:
        config: the effective configuration (names, ports, credentials are derived from it).
    """

    name: ClassVar[str] = "abstract"
    #: The config section holding the island's address: ``host`` (``port``/``url`` where it has them).
    section: ClassVar[str] = "islands"
    #: Whether :meth:`setup` applies a resource profile (``isle <name> setup --resource-profile``).
    takes_profile: ClassVar[bool] = False

    def __init__(self, config: Config) -> None:
        self.config = config
        #: ``isle <name> setup --resource-profile``: its name and values (None: keep what runs / none).
        self.profile_name: str | None = None
        self.profile: ResourceProfile | None = None

    @property
    def host(self) -> str:
        """The host address the island is published on (its :attr:`section`'s ``host``)."""
        return str(getattr(self.config, self.section).host)

    def build(self, log: LogSink) -> IslandStatus:
        """Prepare what :meth:`setup` needs (an image...) without starting anything.

        The default has nothing to prepare.

        Raises:
            ExecutionError: building failed (with the builder's last lines).
            BackendUnavailableError: the runtime is down.
        """
        return IslandStatus(self.name, False, message=f"the {self.name} island needs nothing built")

    @abstractmethod
    def setup(self) -> IslandStatus:
        """Start the island unless it runs; return once it answers (bounded wait).

        The returned ``message`` says "already running" when nothing was started.

        Raises:
            UsageError: the configuration points this part of Atoll at a foreign
                service (the message says what to change), or the runtime cannot run it.
            ExecutionError: its image did not build.
            BackendUnavailableError: it did not become healthy (with its log tail).
        """

    @abstractmethod
    def status(self) -> IslandStatus:
        """Whether it runs, where, and how its health check answers."""

    @abstractmethod
    def stop(self) -> IslandStatus:
        """Stop it and remove what runs; keep its data. Not running is not an error."""


class LocalProcessIsland(Island):
    """An island run as a detached process on this host (the router and the ui on ``local``)."""

    @property
    def url(self) -> str:
        """Where clients reach it: its config :attr:`~Island.section`'s ``url``."""
        return str(getattr(self.config, self.section).url)

    @property
    def _log_file(self) -> Path:
        """The process's log, ``$ATOLL_HOME/run/<name>.log``."""
        return atoll_home() / "run" / f"{self.name}.log"


__all__ = ["Island", "IslandStatus", "LocalProcessIsland"]
