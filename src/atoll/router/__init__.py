"""The routing service: ``python -m atoll.router`` (see :mod:`atoll.router.app`)."""

from __future__ import annotations

from atoll.router.app import Router, parse_target
from atoll.router.discovery import Discovery, Replica, get_discovery

__all__ = ["Discovery", "Replica", "Router", "get_discovery", "parse_target"]
