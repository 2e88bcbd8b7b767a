"""``atoll bvers``: build versions of a project (created by ``atoll proj build``)."""

from __future__ import annotations

from typing import Any

import typer

from atoll.api import records as api
from atoll.api.projects import resolve_project_name
from atoll.cli.common import TAG, confirm
from atoll.cli.records import PROJ, add_record_commands, option
from atoll.domain.records import BuildVersion

app = typer.Typer(help="Build versions of projects.", no_args_is_help=True)


def _get(atoll: Any, tag: str, proj: str | None) -> BuildVersion:
    return api.get_record(atoll, BuildVersion, tag, resolve_project_name(atoll, proj))


def _remove(atoll: Any, tag: str, proj: str | None) -> BuildVersion:
    return api.remove_record(atoll, BuildVersion, tag, resolve_project_name(atoll, proj), confirm=confirm)


def _list(atoll: Any, filter_: dict[str, Any] | None, proj: str | None) -> list[BuildVersion]:
    return api.list_records(atoll, BuildVersion, resolve_project_name(atoll, proj), filter_)


add_record_commands(
    app,
    key=[option("tag", str, *TAG, "--name", default="latest", text="Build version tag."), PROJ],
    info=("Show a build version.", _get),
    rm=("Remove a build version and what was built for it.", _remove),
    list_=("List the build versions of a project.", _list),
    kind="bvers",
    list_options=[PROJ],
)
