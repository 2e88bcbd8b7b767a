"""The ``info``, ``rm`` and ``list`` commands of a record subject, built by one helper.

Every subject (``model``, ``ds``, ``movers``, ``proj``, ``bvers``, ``train``,
``depl``, ``tchest``) shows, removes and lists its records the same way; only
the options that name a record, the API calls and the help texts differ. A
subject declares those::

    add_record_commands(
        app,
        key=[option("name", str, "--name", text="Dataset name."), option("model", str, "--model", text=...)],
        info=("Show a dataset.", lambda atoll, name, model: api.get_dataset(atoll, model, name)),
        rm=("Remove a dataset...", lambda atoll, name, model: api.delete_dataset(atoll, model, name)),
        list_=("List datasets.", lambda atoll, filter_, model: api.list_datasets(atoll, model, filter_)),
        list_options=[option("model", str | None, "--model", default=None, text="Only ...")],
    )

and gets ``info --name N --model M``, ``rm --name N --model M`` and
``list [--model M] [--filter Q] [--expand]``. ``rm`` reports
``removed <kind> <ref>`` (or, with ``-o json``, ``{"removed": kind, <scope>:
..., "name": ...}``) unless the subject gives its own ``report``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import typer

from atoll.cli.common import (
    FILTER,
    ExpandOption,
    FilterOption,
    ProjOption,
    get_context,
    parse_filter,
    render,
    render_removed,
)
from atoll.domain.records import Record


@dataclass(frozen=True)
class Option:
    """One parameter of a generated command, as it would be written in a signature.

    ``annotation`` is the type (an ``Annotated[..., typer.Option(...)]`` alias
    such as :data:`~atoll.cli.common.ProjOption` works too, with a plain default).
    """

    name: str
    annotation: Any
    default: Any


#: ``--proj``, the project of project-scoped records (default: the current project).
PROJ = Option("proj", ProjOption, None)


def option(name: str, annotation: Any, *flags: str, text: str, default: Any = ...) -> Option:
    """``name: annotation = typer.Option(default, *flags, help=text)``; required without ``default``."""
    return Option(name, annotation, typer.Option(default, *flags, help=text))


def command(body: Callable[..., None], options: Sequence[Option], doc: str) -> Callable[..., None]:
    """A Typer command calling ``body(atoll_context, **option_values)``, with ``options`` as its signature."""

    def run(ctx: typer.Context, **values: Any) -> None:
        body(get_context(ctx), **values)

    params = [inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)]
    params += [
        inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=o.default, annotation=o.annotation)
        for o in options
    ]
    run.__signature__ = inspect.Signature(params, return_annotation=None)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
    run.__doc__ = doc
    return run


def _report_removed(result: Any, **key: Any) -> None:
    if isinstance(result, Record):
        render_removed(result)


#: ``(help text, function)`` of one generated command.
Spec = tuple[str, Callable[..., Any]]


def add_record_commands(
    app: typer.Typer,
    *,
    key: Sequence[Option],
    info: Spec | None = None,
    rm: Spec | None = None,
    list_: Spec | None = None,
    kind: str | None = None,
    list_options: Sequence[Option] = (),
    filter_example: str | None = None,
    report: Callable[..., None] = _report_removed,
    after_info: Callable[[Any, Any], None] | None = None,
    order: Sequence[str] = ("info", "rm", "list"),
) -> None:
    """Add the ``info``, ``rm`` and ``list`` commands given (in ``order``) to ``app``.

    Args:
        app: the subject's Typer app.
        key: the options naming one record (``info`` and ``rm`` take them).
        info: help, and ``(atoll, **key) -> what info shows``.
        rm: help, and ``(atoll, **key) -> the removed record`` (or what ``report`` takes).
        list_: help, and ``(atoll, filter, **list options) -> records``.
        kind: the record kind, picking the list table's columns.
        list_options: ``list``'s options besides ``--filter`` and ``--expand``.
        filter_example: a query shown in the help of ``list``'s ``--filter``.
        report: ``(removed, **key)`` prints what ``rm`` did; by default
            ``removed <kind> <ref>`` for a record.
        after_info: ``(atoll, shown)`` prints more after ``info`` showed it.
    """
    for name in order:
        if name == "info" and info is not None:
            def show(atoll: Any, **values: Any) -> None:
                shown = info[1](atoll, **values)  # type: ignore[index]
                render(shown)
                if after_info is not None:
                    after_info(atoll, shown)

            app.command("info")(command(show, key, info[0]))
        elif name == "rm" and rm is not None:
            app.command("rm")(command(lambda atoll, **k: report(rm[1](atoll, **k), **k), key, rm[0]))  # type: ignore[index]
        elif name == "list" and list_ is not None:
            def list_command(atoll: Any, filter_: str | None, expand: bool, **options: Any) -> None:
                records = list_[1](atoll, parse_filter(filter_), **options)  # type: ignore[index]
                render(records, kind=kind, expand=expand)

            if filter_example is None:
                filter_ = Option("filter_", FilterOption, None)
            else:
                text = f"MongoDB-style JSON query, e.g. '{filter_example}'."
                filter_ = option("filter_", str | None, *FILTER, default=None, text=text)
            options = [*list_options, filter_, Option("expand", ExpandOption, False)]
            app.command("list")(command(list_command, options, list_[0]))


__all__ = ["PROJ", "Option", "Spec", "add_record_commands", "command", "option"]
