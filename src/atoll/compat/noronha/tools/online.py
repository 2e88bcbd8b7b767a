"""``noronha.tools.online``: the older home of ``OnlinePredict`` (now :mod:`noronha.tools.serving`)."""

from __future__ import annotations

from .serving import OnlinePredict

__all__ = ["OnlinePredict"]
