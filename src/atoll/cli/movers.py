"""``atoll movers``: model versions, uploaded by hand or published by trainings."""

from __future__ import annotations

import typer

from atoll.api import versions as api
from atoll.cli.common import (
    DescOption,
    ExpandOption,
    FollowOption,
    LimitOption,
    SortOption,
    get_context,
    parse_filter,
    parse_json_option,
    parse_page,
    render,
    render_done,
)

app = typer.Typer(help="Model versions.", no_args_is_help=True)


@app.command("new")
def new(
    ctx: typer.Context,
    name: str | None = typer.Option(None, "--name", help="Version name (default: a random name)."),
    model: str = typer.Option(..., "--model", help="Model of the version."),
    details: str | None = typer.Option(None, "--details", help="JSON object of free details (e.g. metrics)."),
    path: str | None = typer.Option(None, "--path", help="Directory holding the files."),
    dataset: str | None = typer.Option(None, "--dataset", help="Dataset it was trained on (snapshotted)."),
    train: str | None = typer.Option(None, "--train", help="Training that produced it (snapshotted)."),
    proj: str | None = typer.Option(None, "--proj", help="Project of --train (default: the current project)."),
    pretrained: str | None = typer.Option(None, "--pretrained", help="MODEL:VERSION it was derived from."),
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
    dataset: str | None = typer.Option(None, "--dataset", help="Dataset it was trained on (snapshotted)."),
    train: str | None = typer.Option(None, "--train", help="Training that produced it (snapshotted)."),
    proj: str | None = typer.Option(None, "--proj", help="Project of --train (default: the current project)."),
    pretrained: str | None = typer.Option(None, "--pretrained", help="MODEL:VERSION it was derived from."),
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


@app.command("info")
def info(
    ctx: typer.Context,
    name: str = typer.Option(..., "--name", help="Version name."),
    model: str = typer.Option(..., "--model", help="Model of the version."),
) -> None:
    """Show a model version."""
    render(api.get_version(get_context(ctx), model, name))


@app.command("rm")
def rm(
    ctx: typer.Context,
    name: str = typer.Option(..., "--name", help="Version name."),
    model: str = typer.Option(..., "--model", help="Model of the version."),
) -> None:
    """Remove a model version and its files (deployments keep their snapshot)."""
    record = api.delete_version(get_context(ctx), model, name)
    render_done(f"removed model version {record.ref}", removed="movers", model=model, name=name)


@app.command("list")
def list_(
    ctx: typer.Context,
    model: str | None = typer.Option(None, "--model", help="Only versions of this model."),
    dataset: str | None = typer.Option(None, "--dataset", help="Only versions trained on this dataset."),
    train: str | None = typer.Option(None, "--train", help="Only versions produced by this training."),
    proj: str | None = typer.Option(None, "--proj", help="Only versions produced by trainings of this project."),
    filter_: str | None = typer.Option(None, "--filter", help="MongoDB-style JSON query, e.g. '{\"details.metrics.acc\": {\"$gt\": 0.9}}'."),
    expand: ExpandOption = False,
    limit: LimitOption = None,
    sort: SortOption = None,
    desc: DescOption = False,
) -> None:
    """List model versions (oldest first unless --sort/--desc say otherwise)."""
    records = api.list_versions(
        get_context(ctx), model, dataset, train, proj, parse_filter(filter_), parse_page(limit, sort, desc)
    )
    render(records, kind="movers", expand=expand)
