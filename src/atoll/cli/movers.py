"""``atoll movers``: model versions, uploaded by hand or published by trainings."""

from __future__ import annotations

from typing import Annotated

import typer

from atoll.api import versions as api
from atoll.cli.common import (
    DescOption,
    FollowOption,
    LimitOption,
    SortOption,
    get_context,
    parse_json_option,
    parse_page,
    render,
)
from atoll.cli.records import Option, add_record_commands, option

app = typer.Typer(help="Model versions.", no_args_is_help=True)

DATASET_FILTER_HELP = "Only versions trained on this dataset."
PROJ_FILTER_HELP = "Only versions produced by trainings of this project."

# Options `new` and `update` declare alike: what the version came from.
DatasetOption = Annotated[
    str | None, typer.Option("--dataset", help="Dataset it was trained on (snapshotted).")
]
TrainOption = Annotated[str | None, typer.Option("--train", help="Training that produced it (snapshotted).")]
TrainProjOption = Annotated[
    str | None, typer.Option("--proj", help="Project of --train (default: the current project).")
]
PretrainedOption = Annotated[
    str | None, typer.Option("--pretrained", help="MODEL:VERSION it was derived from.")
]


@app.command("new")
def new(
    ctx: typer.Context,
    name: str | None = typer.Option(None, "--name", help="Version name (default: a random name)."),
    model: str = typer.Option(..., "--model", help="Model of the version."),
    details: str | None = typer.Option(None, "--details", help="JSON object of free details (e.g. metrics)."),
    path: str | None = typer.Option(None, "--path", help="Directory holding the files."),
    dataset: DatasetOption = None,
    train: TrainOption = None,
    proj: TrainProjOption = None,
    pretrained: PretrainedOption = None,
    compress: bool = typer.Option(False, "--compress", help="Store the files as one tar.gz."),
    skip_upload: bool = typer.Option(False, "--skip-upload", help="Record the version without storing files."),
    lightweight: bool = typer.Option(
        False, "--lightweight", help="Keep the (small) files in the metadata database, not the file store."
    ),
    follow_symlinks: FollowOption = False,
) -> None:
    """Upload a model version."""
    render(
        api.new_version(
            get_context(ctx), model, name,
            details=parse_json_option(details, "--details", expect=dict),
            path=path, dataset=dataset, train=train, proj=proj, pretrained=pretrained,
            compress=compress, skip_upload=skip_upload, lightweight=lightweight,
            follow_symlinks=follow_symlinks,
        )
    )


@app.command("update")
def update(
    ctx: typer.Context,
    name: str = typer.Option(..., "--name", help="Version name."),
    model: str = typer.Option(..., "--model", help="Model of the version."),
    details: str | None = typer.Option(None, "--details", help="JSON object replacing the details."),
    path: str | None = typer.Option(None, "--path", help="Directory whose files replace the stored ones."),
    dataset: DatasetOption = None,
    train: TrainOption = None,
    proj: TrainProjOption = None,
    pretrained: PretrainedOption = None,
    compress: bool | None = typer.Option(None, "--compress/--no-compress", help="Store as one tar.gz (with --path)."),
    skip_upload: bool = typer.Option(False, "--skip-upload", help="Record the files without storing them."),
    follow_symlinks: FollowOption = False,
) -> None:
    """Change a model version (unspecified fields are kept)."""
    render(
        api.update_version(
            get_context(ctx), model, name,
            details=parse_json_option(details, "--details", expect=dict),
            path=path, dataset=dataset, train=train, proj=proj, pretrained=pretrained,
            compress=compress, skip_upload=skip_upload, follow_symlinks=follow_symlinks,
        )
    )


add_record_commands(
    app,
    key=[
        option("name", str, "--name", text="Version name."),
        option("model", str, "--model", text="Model of the version."),
    ],
    info=("Show a model version.", lambda atoll, name, model: api.get_version(atoll, model, name)),
    rm=(
        "Remove a model version and its files (deployments keep their snapshot).",
        lambda atoll, name, model: api.delete_version(atoll, model, name),
    ),
    list_=(
        "List model versions (oldest first unless --sort/--desc say otherwise).",
        lambda atoll, filter_, model, dataset, train, proj, limit, sort, desc: api.list_versions(
            atoll, model, dataset, train, proj, filter_, parse_page(limit, sort, desc)
        ),
    ),
    kind="movers",
    list_options=[
        option("model", str | None, "--model", default=None, text="Only versions of this model."),
        option("dataset", str | None, "--dataset", default=None, text=DATASET_FILTER_HELP),
        option("train", str | None, "--train", default=None, text="Only versions produced by this training."),
        option("proj", str | None, "--proj", default=None, text=PROJ_FILTER_HELP),
        Option("limit", LimitOption, None),
        Option("sort", SortOption, None),
        Option("desc", DescOption, False),
    ],
    filter_example='{"details.metrics.acc": {"$gt": 0.9}}',
)
