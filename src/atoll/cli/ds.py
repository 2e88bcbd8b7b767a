"""``atoll ds``: datasets, uploaded from a directory and checked against the model's data files."""

from __future__ import annotations

import typer

from atoll.api import datasets as api
from atoll.cli.common import FollowOption, confirm, get_context, parse_json_option, render
from atoll.cli.records import add_record_commands, option

app = typer.Typer(help="Datasets for training models.", no_args_is_help=True)


@app.command("new")
def new(
    ctx: typer.Context,
    name: str | None = typer.Option(None, "--name", help="Dataset name (default: a random name)."),
    model: str = typer.Option(..., "--model", help="Model the dataset trains."),
    details: str | None = typer.Option(None, "--details", help="JSON object of free details."),
    path: str | None = typer.Option(None, "--path", help="Directory holding the files."),
    compress: bool = typer.Option(False, "--compress", help="Store the files as one tar.gz."),
    skip_upload: bool = typer.Option(False, "--skip-upload", help="Record the dataset without storing files."),
    lightweight: bool = typer.Option(
        False, "--lightweight", help="Keep the (small) files in the metadata database, not the file store."
    ),
    follow_symlinks: FollowOption = False,
) -> None:
    """Upload a dataset."""
    render(
        api.new_dataset(
            get_context(ctx), model, name,
            details=parse_json_option(details, "--details", expect=dict),
            path=path, compress=compress, skip_upload=skip_upload, lightweight=lightweight,
            follow_symlinks=follow_symlinks,
        )
    )


@app.command("update")
def update(
    ctx: typer.Context,
    name: str = typer.Option(..., "--name", help="Dataset name."),
    model: str = typer.Option(..., "--model", help="Model of the dataset."),
    details: str | None = typer.Option(None, "--details", help="JSON object replacing the details."),
    path: str | None = typer.Option(None, "--path", help="Directory whose files replace the stored ones."),
    compress: bool | None = typer.Option(None, "--compress/--no-compress", help="Store as one tar.gz (with --path)."),
    skip_upload: bool = typer.Option(False, "--skip-upload", help="Record the files without storing them."),
    follow_symlinks: FollowOption = False,
) -> None:
    """Change a dataset (unspecified fields are kept)."""
    render(
        api.update_dataset(
            get_context(ctx), model, name,
            details=parse_json_option(details, "--details", expect=dict),
            path=path, compress=compress, skip_upload=skip_upload, follow_symlinks=follow_symlinks,
        )
    )


add_record_commands(
    app,
    key=[
        option("name", str, "--name", text="Dataset name."),
        option("model", str, "--model", text="Model of the dataset."),
    ],
    info=("Show a dataset.", lambda atoll, name, model: api.get_dataset(atoll, model, name)),
    rm=(
        "Remove a dataset and its files (asks first when model versions came from it).",
        lambda atoll, name, model: api.delete_dataset(atoll, model, name, confirm=confirm),
    ),
    list_=("List datasets.", lambda atoll, filter_, model: api.list_datasets(atoll, model, filter_)),
    kind="ds",
    list_options=[option("model", str | None, "--model", default=None, text="Only datasets of this model.")],
)
