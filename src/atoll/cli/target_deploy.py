"""``train new --target-deploy/--td``: the checks before the training and the report after it.

The work is :mod:`atoll.api.hot_update`; this module refuses ``--detach``
(the replicas are told by the ``atoll`` process that followed the training,
so a detached training would publish without anyone telling them) and prints
one row per replica: a table on stdout, or under ``target_deploy`` in the
training's JSON/YAML document.
"""

from __future__ import annotations

import sys
from typing import Any

from atoll.api import hot_update
from atoll.api.context import AtollContext
from atoll.cli.output import render
from atoll.domain.records import Deployment, TaskState, Training
from atoll.errors import AtollError, UsageError

TD_HELP = (
    "LazyModelServer deployment of the project whose replicas load the version this training publishes "
    "(POST /update to each replica); checked before the training starts. Not with --detach."
)


def check(atoll: AtollContext, name: str, proj: str | None, detach: bool) -> Deployment:
    """The target deployment, checked before anything starts (UsageError with --detach/-b)."""
    if detach:
        raise UsageError(
            "--target-deploy needs `atoll train new` to follow the training until it publishes; "
            "drop --detach/--background"
        )
    return hot_update.check_target(atoll, name, proj)


def update(atoll: AtollContext, target: Deployment, final: Training, output: str) -> None:
    """Tell the replicas of ``target`` to load what ``final`` published, print the rows, fail on a failed row.

    Nothing is sent when the training did not finish (its own error follows).

    Raises:
        AtollError: the training published nothing, or a replica did not load the version.
    """
    if final.task.state != TaskState.FINISHED:
        if output != "table":
            render(final)
        return
    versions = hot_update.published_versions(atoll, final)
    rows = hot_update.update_target(atoll, target, versions) if versions else []
    report: dict[str, Any] = {"deployment": target.ref, "versions": [v.ref for v in versions], "replicas": rows}
    if output == "table":
        if rows:
            render(rows, columns=["replica", "model_version", "status", "error"], title=f"deployment {target.ref}")
    else:
        render({**final.public_dump(), "target_deploy": report})
    if not versions:
        raise AtollError(f"training {final.ref} published no model version: deployment {target.ref} was not updated")
    failed = [r for r in rows if r["status"] != "loaded"]
    if failed:
        raise AtollError(
            f"{len(failed)} of {len(rows)} replica updates of deployment {target.ref} did not load: "
            + "; ".join(f"{r['replica']}: {r['error']}" for r in failed)
        )
    loaded = ", ".join(sorted({r["model_version"] for r in rows}))
    count = len({r["replica"] for r in rows})
    print(f"deployment {target.ref}: {count} replica(s) now serve {loaded} by default", file=sys.stderr, flush=True)


__all__ = ["TD_HELP", "check", "update"]
