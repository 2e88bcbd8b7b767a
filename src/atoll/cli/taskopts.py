"""Options of the commands that start a task (``train new``, ``depl new``, ``note``, ``isle … setup``).

Declared once here; the API checks the values (:func:`atoll.api.builds.task_options`).
"""

from __future__ import annotations

from typing import Annotated

import typer

ResourceProfileOption = Annotated[
    str | None,
    typer.Option(
        "--resource-profile", "--rp",
        help="A key of container_manager.resource_profiles (default: the <kind>_profile setting).",
    ),
]
MountOption = Annotated[
    list[str] | None,
    typer.Option(
        "--mount", "-m",
        help="SRC:DST[:ro]: a host path (absolute) or a named volume (swarm) / claim (kubernetes) seen at DST "
             "(repeatable; not under /app, /data, /model, /atoll).",
    ),
]

__all__ = ["MountOption", "ResourceProfileOption"]
