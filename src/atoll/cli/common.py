"""Helpers every CLI subject shares: the per-command context, prompts, option parsing.

Subjects import ``get_context`` and ``render`` from here::

    from atoll.cli.common import get_context, render

    @app.command("info")
    def info(ctx: typer.Context, name: str = typer.Option(..., "--name")) -> None:
        render(api.get_model(get_context(ctx), name))

The global options (``atoll -o json -s ...``) are parsed once by the root
callback in :mod:`atoll.cli.main` into a :class:`CliState` kept on the root
Typer context; :func:`get_context` opens the :class:`AtollContext` lazily, so
commands that need no store (``atoll version``) never touch one.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from atoll.api.context import AtollContext
from atoll.api.records import Page, label
from atoll.cli.logfiles import go_background
from atoll.cli.output import render, render_done
from atoll.cli.state import CliState, current_state, set_state
from atoll.domain.records import Record
from atoll.domain.values import MAX_DEPTH, check_json_value
from atoll.errors import UsageError

PROJ_HELP = "Project (default: the project homed in the working dir, else project.working_project)."

# The flags of options several commands take, with the short forms and aliases users
# of the modelled framework type (``typer.Option(None, *NAME, help=...)``). A short
# form is left out where the command uses it for something else (``depl new -n`` is
# --n-tasks; ``-m`` is --mount on train/depl/note); tests/cli/test_flags.py checks.
NAME = ("--name", "-n")
MODEL = ("--model", "-m")
TAG = ("--tag", "-t")
ENV = ("--env", "--env-var", "-e")
DATASET = ("--dataset", "--ds")
MOVERS = ("--movers", "--mv")
DETAILS = ("--details", "-d")
DESC = ("--desc", "-d")
PATH = ("--path", "-p")
FILTER = ("--filter", "-f")

# Options several subjects declare alike, written once (``proj: ProjOption = None``).
ProjOption = Annotated[str | None, typer.Option("--proj", help=PROJ_HELP)]
FilterOption = Annotated[str | None, typer.Option(*FILTER, help="MongoDB-style JSON query.")]
ExpandOption = Annotated[bool, typer.Option("--expand", "-e", help="Show whole records.")]
# Order and size of a listing (``list`` commands; see parse_page).
LimitOption = Annotated[int | None, typer.Option("--limit", help="Show at most N records.")]
SortOption = Annotated[
    str | None, typer.Option("--sort", help="Order by this field, e.g. created_at, name, details.metrics.acc.")
]
DescOption = Annotated[bool, typer.Option("--desc", help="Reverse the order (--sort created_at --desc: newest first).")]
FollowOption = Annotated[
    bool, typer.Option("--follow-symlinks", help="Store what symbolic links point to (refused by default).")
]


def _go_background(ctx: typer.Context, value: bool) -> bool:
    if value:
        go_background(_root_state(ctx))
    return value


#: ``train new -b``, ``note -b``: the global ``-b`` given after the command.
BackgroundOption = Annotated[
    bool,
    typer.Option(
        "--background", "-b", callback=_go_background,
        help="Return once started and print nothing: output and logs go to the log file (logger.directory, "
        "default $ATOLL_HOME/logs).",
    ),
]


def _root_state(typer_ctx: typer.Context | None) -> CliState:
    ctx: Any = typer_ctx
    while ctx is not None:
        if isinstance(ctx.obj, CliState):
            return ctx.obj
        ctx = ctx.parent
    return current_state()


def get_context(typer_ctx: typer.Context | None = None) -> AtollContext:
    """The AtollContext of this command, created on first use from the global options.

    Raises:
        ConfigError: the configuration layers are invalid (exit 2).
    """
    state = _root_state(typer_ctx)
    if state.atoll is None:
        state.atoll = AtollContext(config=state.config)
    return state.atoll


def get_state(typer_ctx: typer.Context | None = None) -> CliState:
    """The global options (output format, --background, --skip-questions...)."""
    return _root_state(typer_ctx)


def print_err(line: str) -> None:
    """Print one line on stderr at once: progress and logs, so stdout stays the result."""
    print(line, file=sys.stderr, flush=True)


def can_ask() -> bool:
    """Someone can answer a question: stdin is a terminal and the question would show (not ``-b``)."""
    return sys.stdin.isatty() and not current_state().background


def confirm(question: str) -> bool:
    """Ask a yes/no question; ``--skip-questions`` answers yes.

    Without a terminal on stdin (or with ``-b``) nobody can answer, so the
    answer is no: the caller then refuses with a message telling to use ``-s``.
    """
    if current_state().skip_questions:
        return True
    if not can_ask():
        return False
    return bool(typer.confirm(question, default=False, err=True))


def parse_json_option(text: str | None, option_name: str, *, expect: type | None = None) -> Any:
    """Parse a JSON option value; ``None`` stays ``None``.

    Raises:
        UsageError: the text is not valid JSON, or not of the ``expect`` type (exit 2).
    """
    if text is None:
        return None
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{option_name}: malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except RecursionError:
        raise UsageError(f"{option_name}: nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # NaN / Infinity (see _no_constant)
        raise UsageError(f"{option_name}: {exc}") from None
    check_json_value(value, option_name)
    if expect is not None and not isinstance(value, expect):
        wanted = {"dict": "an object", "list": "an array"}.get(expect.__name__, expect.__name__)
        raise UsageError(f"{option_name}: expected {wanted}, got {type(value).__name__}")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (no NaN or Infinity)")


def parse_filter(text: str | None) -> dict[str, Any] | None:
    """The ``--filter`` option of ``list`` commands: a JSON object, or ``None``.

    Raises:
        UsageError: the text is not a JSON object (exit 2).
    """
    value: dict[str, Any] | None = parse_json_option(text, "--filter", expect=dict)
    return value


def parse_page(limit: int | None, sort: str | None, desc: bool) -> Page:
    """The ``--limit/--sort/--desc`` options of ``list`` commands.

    Raises:
        UsageError: ``--limit`` is not a positive number (exit 2); a bad ``--sort``
            field is refused by the store the same way.
    """
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be a positive number, not {limit}")
    return Page(limit=limit, sort=sort, descending=desc)


def default_notebook(atoll: AtollContext, proj: str | None, tag: str, notebook: str | None, default: str) -> str:
    """``--nb`` when given, else ``default`` (``notebooks/train.ipynb``...) when the project has it:
    in the build's files (local runtime) or the project's home dir.

    Raises:
        NotFoundError: the project or the build is missing.
        UsageError: no ``--nb`` and the project has no ``default`` (exit 2).
    """
    if notebook is not None:
        return notebook
    from atoll.api.builds import get_build
    from atoll.api.projects import get_project

    project = get_project(atoll, proj)
    location = get_build(atoll, project.name, tag).location
    places = [Path(location) / "app"] if location else []
    places += [Path(project.home_dir)] if project.home_dir else []
    if any((place / default).is_file() for place in places):
        return default
    raise UsageError(f"--nb: give the notebook to run (project {project.name} has no {default})")


def render_removed(record: Record) -> None:
    """Report the removal of a record: ``removed <kind> <ref>``; ``-o json`` gives kind, scope and name."""
    data: dict[str, Any] = {"removed": record.kind}
    if record.scope_field:
        data[record.scope_field] = record.scope
    data["name"] = record.name
    render_done(f"removed {label(record.kind)} {record.ref}", **data)


def parse_kv(items: list[str] | None, option_name: str = "--env") -> dict[str, str]:
    """``["K=V", ...]`` → ``{"K": "V"}``.

    Raises:
        UsageError: an item has no ``=`` or an empty key (exit 2).
    """
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{option_name}: expected KEY=VALUE, got {item!r}")
        out[key.strip()] = value
    return out


__all__ = [
    "DATASET",
    "DESC",
    "DETAILS",
    "ENV",
    "FILTER",
    "MODEL",
    "MOVERS",
    "NAME",
    "PATH",
    "PROJ_HELP",
    "TAG",
    "BackgroundOption",
    "CliState",
    "DescOption",
    "ExpandOption",
    "FilterOption",
    "FollowOption",
    "LimitOption",
    "ProjOption",
    "SortOption",
    "can_ask",
    "confirm",
    "current_state",
    "default_notebook",
    "get_context",
    "get_state",
    "parse_filter",
    "parse_json_option",
    "parse_kv",
    "parse_page",
    "print_err",
    "render",
    "render_done",
    "render_removed",
    "set_state",
]
