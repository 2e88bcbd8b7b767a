"""``atoll get-me-started``: set up the islands a newcomer needs, and say what was done.

Which islands:

- the ``router`` always (it is how predictions reach deployments), when the
  runtime has one (it is reported as skipped otherwise);
- ``db`` when ``metadata.native`` is true, ``files`` when ``file_store.native``
  is true, ``registry`` when ``docker.target_registry`` names this host —
  on the ``swarm`` runtime, and on ``local`` too when configured so
  explicitly (the islands need a swarm-mode engine, not the swarm manager);
  on ``kubernetes`` db, files and the router are objects in the cluster (no
  registry island there: it is reported as skipped).

With the defaults (local runtime, embedded stores) that is the router only.
Every island is set up independently: one failing does not hide the others,
and the result lists each island with what happened to it.
"""

from __future__ import annotations

from dataclasses import dataclass

from atoll.api.context import AtollContext
from atoll.api.islands import available, setup_island
from atoll.errors import AtollError


@dataclass
class StartStep:
    """One island of ``get-me-started``: what happened and where it runs."""

    island: str
    done: str  # "set up" | "already running" | "skipped" | "failed"
    url: str | None
    message: str
    seconds: float | None = None


def islands_needed(ctx: AtollContext) -> list[str]:
    """The islands the configuration calls for, in setup order.

    The stores come first: the router is handed the API keys, which it reads
    from the metadata store (the db island when that is native).
    """
    config = ctx.config
    names: list[str] = []
    if config.metadata.native:
        names.append("db")
    if config.file_store.native:
        names.append("files")
    target = config.docker.target_registry
    if target and target.split("/", 1)[0].rpartition(":")[0] in ("127.0.0.1", "localhost"):
        names.append("registry")
    names.append("router")
    return names


def get_me_started(ctx: AtollContext) -> list[StartStep]:
    """Set up every island :func:`islands_needed` names; report each one.

    Raises:
        AtollError: when every island failed (the first error); partial
            failures are reported in the steps instead.
    """
    steps: list[StartStep] = []
    errors: list[AtollError] = []
    manager = ctx.config.container_manager.type
    for name in islands_needed(ctx):
        if not available(ctx, name):
            steps.append(StartStep(name, "skipped", None, f"the {name} island is not available on the {manager!r} runtime"))
            continue
        try:
            status = setup_island(ctx, name)
        except AtollError as exc:
            errors.append(exc)
            steps.append(StartStep(name, "failed", None, str(exc)))
            continue
        done = "already running" if "already running" in status.message else "set up"
        steps.append(StartStep(name, done, status.url, status.message, status.seconds))
    if errors and all(step.done in ("failed", "skipped") for step in steps):
        raise errors[0]
    return steps


__all__ = ["StartStep", "get_me_started", "islands_needed"]
