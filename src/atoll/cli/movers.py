"""``atoll movers``: model versions, uploaded by hand or published by trainings."""

from __future__ import annotations

import typer

from atoll.api import versions as api
from atoll.cli.common import DATASET, MODEL, DescOption, LimitOption, SortOption, parse_page
from atoll.cli.records import Option, add_record_commands, option
from atoll.cli.uploads import add_upload_commands, by_model, upload_key

app = typer.Typer(help="Model versions.", no_args_is_help=True)

DATASET_FILTER_HELP = "Only versions trained on this dataset."
PROJ_FILTER_HELP = "Only versions produced by trainings of this project."

add_upload_commands(
    app, title="Version", noun="model version", new=api.new_version, update=api.update_version,
    model_text="Model of the version.", details_text="JSON object of free details (e.g. metrics).",
    origin=[  # what the version came from
        option("dataset", str | None, *DATASET, default=None, text="Dataset it was trained on (snapshotted)."),
        option("train", str | None, "--train", default=None, text="Training that produced it (snapshotted)."),
        option("proj", str | None, "--proj", default=None, text="Project of --train (default: the current project)."),
        option("pretrained", str | None, "--pretrained", default=None, text="MODEL:VERSION it was derived from."),
    ],
)

add_record_commands(
    app,
    key=upload_key("Version"),
    info=("Show a model version.", by_model(api.get_version)),
    rm=("Remove a model version and its files (deployments keep their snapshot).", by_model(api.delete_version)),
    list_=(
        "List model versions (oldest first unless --sort/--desc say otherwise).",
        lambda atoll, filter_, model, dataset, train, proj, limit, sort, desc: api.list_versions(
            atoll, model, dataset, train, proj, filter_, parse_page(limit, sort, desc)
        ),
    ),
    kind="movers",
    list_options=[
        option("model", str | None, *MODEL, default=None, text="Only versions of this model."),
        option("dataset", str | None, *DATASET, default=None, text=DATASET_FILTER_HELP),
        option("train", str | None, "--train", default=None, text="Only versions produced by this training."),
        option("proj", str | None, "--proj", default=None, text=PROJ_FILTER_HELP),
        Option("limit", LimitOption, None),
        Option("sort", SortOption, None),
        Option("desc", DescOption, False),
    ],
    filter_example='{"details.metrics.acc": {"$gt": 0.9}}',
)
