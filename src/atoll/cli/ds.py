"""``atoll ds``: datasets, uploaded from a directory and checked against the model's data files."""

from __future__ import annotations

import typer

from atoll.api import datasets as api
from atoll.cli.common import MODEL, confirm
from atoll.cli.records import add_record_commands, option
from atoll.cli.uploads import add_upload_commands, by_model, upload_key

app = typer.Typer(help="Datasets for training models.", no_args_is_help=True)


add_upload_commands(
    app, title="Dataset", noun="dataset", new=api.new_dataset, update=api.update_dataset,
    model_text="Model the dataset trains.", details_text="JSON object of free details.",
)

add_record_commands(
    app,
    key=upload_key("Dataset"),
    info=("Show a dataset.", by_model(api.get_dataset)),
    rm=(
        "Remove a dataset and its files (asks first when model versions came from it).",
        by_model(api.delete_dataset, confirm=confirm),
    ),
    list_=("List datasets.", lambda atoll, filter_, model: api.list_datasets(atoll, model, filter_)),
    kind="ds",
    list_options=[option("model", str | None, *MODEL, default=None, text="Only datasets of this model.")],
)
