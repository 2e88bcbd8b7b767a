"""The ``new`` and ``update`` commands of datasets and model versions, built by one helper.

``ds`` and ``movers`` upload their files the same way (``--path``,
``--compress``, ``--skip-upload``, ``--lightweight``, ``--follow-symlinks``,
``--details``); a subject declares its API calls, its help texts and the
options that only it has (``origin``, placed after ``--path``)::

    add_upload_commands(
        app, title="Dataset", noun="dataset", new=api.new_dataset, update=api.update_dataset,
        model_text="Model the dataset trains.", details_text="JSON object of free details.",
    )
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import typer

from atoll.cli.common import DETAILS, MODEL, NAME, PATH, FollowOption, parse_json_option, render
from atoll.cli.records import Option, command, option


def upload_key(title: str) -> list[Option]:
    """``--name`` and ``--model``, naming one dataset (``title="Dataset"``) or version."""
    return [
        option("name", str, *NAME, text=f"{title} name."),
        option("model", str, *MODEL, text=f"Model of the {title.lower()}."),
    ]


def by_model(call: Callable[..., Any], **extra: Any) -> Callable[..., Any]:
    """``call(atoll, model, name, **extra)`` for ``info`` and ``rm``, which name a record by :func:`upload_key`."""
    return lambda atoll, name, model: call(atoll, model, name, **extra)


def _uploader(call: Callable[..., Any]) -> Callable[..., None]:
    def upload(atoll: Any, *, model: str, name: str | None, details: str | None, **options: Any) -> None:
        render(call(atoll, model, name, details=parse_json_option(details, "--details", expect=dict), **options))

    return upload


def add_upload_commands(
    app: typer.Typer,
    *,
    title: str,
    noun: str,
    new: Callable[..., Any],
    update: Callable[..., Any],
    model_text: str,
    details_text: str,
    origin: Sequence[Option] = (),
) -> None:
    """Add ``new`` (``new(atoll, model, name, details=..., **options)``) and ``update`` to ``app``.

    Args:
        title: what ``--name`` names, capitalized (``Dataset``, ``Version``).
        noun: the record in the commands' help (``dataset``, ``model version``).
        model_text: the help of ``new``'s ``--model``.
        details_text: the help of ``new``'s ``--details``.
        origin: options of both commands after ``--path``, passed on by name.
    """
    new_options = [
        option("name", str | None, *NAME, default=None, text=f"{title} name (default: a random name)."),
        option("model", str, *MODEL, text=model_text),
        option("details", str | None, *DETAILS, default=None, text=details_text),
        option("path", str | None, *PATH, default=None, text="Directory holding the files."),
        *origin,
        option("compress", bool, "--compress", "-c", default=False, text="Store the files as one tar.gz."),
        option("skip_upload", bool, "--skip-upload", default=False, text=f"Record the {title.lower()} without storing files."),
        option(
            "lightweight", bool, "--lightweight", default=False,
            text="Keep the (small) files in the metadata database, not the file store.",
        ),
        Option("follow_symlinks", FollowOption, False),
    ]
    app.command("new")(command(_uploader(new), new_options, f"Upload a {noun}."))
    update_options = [
        *upload_key(title),
        option("details", str | None, *DETAILS, default=None, text="JSON object replacing the details."),
        option("path", str | None, *PATH, default=None, text="Directory whose files replace the stored ones."),
        *origin,
        option(
            "compress", bool | None, "--compress/--no-compress", default=None,
            text="Store as one tar.gz (with --path).",
        ),
        option("skip_upload", bool, "--skip-upload", default=False, text="Record the files without storing them."),
        Option("follow_symlinks", FollowOption, False),
    ]
    app.command("update")(command(_uploader(update), update_options, f"Change a {noun} (unspecified fields are kept)."))


__all__ = ["add_upload_commands", "by_model", "upload_key"]
