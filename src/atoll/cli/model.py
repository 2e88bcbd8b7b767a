"""``atoll model``: model definitions and their file schemas."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from atoll.api import models as api
from atoll.cli.common import DESC, NAME, confirm, get_context, parse_json_option, render, render_done
from atoll.cli.records import add_record_commands, option

app = typer.Typer(help="Model definitions: what a version and a training dataset hold.", no_args_is_help=True)

MODEL_FILE_HELP = 'File spec of a model version, JSON: {"name": "clf.pkl", "required": true, "max_mb": 64, "desc": ""} (repeatable).'
DATA_FILE_HELP = "File spec of a training dataset, same JSON form as --model-file (repeatable)."


def _schemas(model_file: list[str] | None, data_file: list[str] | None) -> dict[str, Any]:
    """``model_files`` and ``data_files`` for the API, from the repeated --model-file / --data-file JSON."""
    return {
        "model_files": [parse_json_option(item, "--model-file") for item in model_file or []],
        "data_files": [parse_json_option(item, "--data-file") for item in data_file or []],
    }


@app.command("new")
def new(
    ctx: typer.Context,
    name: str = typer.Option(..., *NAME, help="Model name."),
    desc: str = typer.Option("", *DESC, help="Description."),
    model_file: Annotated[list[str] | None, typer.Option("--model-file", help=MODEL_FILE_HELP)] = None,
    data_file: Annotated[list[str] | None, typer.Option("--data-file", help=DATA_FILE_HELP)] = None,
) -> None:
    """Record a new model."""
    render(api.new_model(get_context(ctx), name, desc, **_schemas(model_file, data_file)))


@app.command("update")
def update(
    ctx: typer.Context,
    name: str = typer.Option(..., *NAME, help="Model name."),
    desc: str | None = typer.Option(None, *DESC, help="New description."),
    model_file: Annotated[list[str] | None, typer.Option("--model-file", help=MODEL_FILE_HELP + " Replaces the schema.")] = None,
    data_file: Annotated[list[str] | None, typer.Option("--data-file", help=DATA_FILE_HELP + " Replaces the schema.")] = None,
    no_model_files: bool = typer.Option(False, "--no-model-files", help="Empty the model files schema."),
    no_data_files: bool = typer.Option(False, "--no-data-files", "--no-ds-files", help="Empty the data files schema."),
) -> None:
    """Change a model's description or file schemas (unspecified fields are kept)."""
    render(
        api.update_model(
            get_context(ctx), name, desc, **_schemas(model_file, data_file),
            no_model_files=no_model_files, no_data_files=no_data_files,
        )
    )


def _report(removal: api.ModelRemoval, name: str) -> None:
    render_done(
        f"removed model {name} ({len(removal.datasets)} dataset(s), {len(removal.versions)} version(s); "
        f"dropped from {len(removal.projects)} project(s))",
        removed="model",
        name=name,
        datasets=removal.datasets,
        versions=removal.versions,
        projects=removal.projects,
    )


add_record_commands(
    app,
    key=[option("name", str, *NAME, text="Model name.")],
    info=("Show a model.", api.get_model),
    rm=(
        "Remove a model with its datasets, versions and their files (asks first when it has any).",
        lambda atoll, name: api.delete_model(atoll, name, confirm=confirm),
    ),
    report=_report,
    list_=("List models.", lambda atoll, filter_: api.list_models(atoll, filter=filter_)),
    kind="model",
    filter_example='{"name": {"$regex": "^ir"}}',
)
