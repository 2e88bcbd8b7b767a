"""``atoll train``: run training notebooks and follow them."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from atoll.api import trainings as api
from atoll.api.context import AtollContext
from atoll.cli import target_deploy
from atoll.cli.common import (
    DATASET,
    ENV,
    NAME,
    TAG,
    BackgroundOption,
    ProjOption,
    current_state,
    default_notebook,
    get_context,
    get_state,
    parse_json_option,
    parse_kv,
    render,
    render_done,
)
from atoll.cli.records import PROJ, add_record_commands, command, option
from atoll.cli.taskopts import MountOption, ResourceProfileOption
from atoll.domain.records import TaskState, Training
from atoll.errors import CancelledError, ExecutionError

app = typer.Typer(help="Trainings: parameterized executions of a notebook on a build.", no_args_is_help=True)


def _follow(atoll: AtollContext, record: Training, show_bar: bool, out: Console) -> Training:
    """Stream the task's output and a progress bar until the training ends."""
    if not show_bar:
        return api.wait_training(
            atoll, record, on_line=lambda line: out.print(line, markup=False, highlight=False)
        )
    with Progress(
        TextColumn(f"[bold]{record.ref}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[state]}"),
        TimeElapsedColumn(),
        console=out,
        transient=True,
    ) as bar:
        task = bar.add_task("train", total=1.0, state=record.task.state.value)

        def on_line(line: str) -> None:
            bar.console.print(line, markup=False, highlight=False)

        def on_progress(current: Training) -> None:
            bar.update(task, completed=current.task.progress, state=current.task.state.value)

        return api.wait_training(atoll, record, on_line=on_line, on_progress=on_progress)


def _outcome(atoll: AtollContext, record: Training) -> None:
    """Raise the error matching a training that did not finish."""
    if record.task.state == TaskState.FAILED:
        where = f" in cell {record.task.failed_cell}" if record.task.failed_cell is not None else ""
        stored = api.notebook_location(atoll, record)
        hint = f"; executed notebook: {stored}" if stored else ""
        raise ExecutionError(
            f"training {record.ref} failed{where}: {record.task.error}{hint}", cell=record.task.failed_cell
        )
    if record.task.state == TaskState.CANCELLED:
        raise CancelledError(f"training {record.ref} was cancelled")


@app.command("new")
def new(
    ctx: typer.Context,
    notebook: str | None = typer.Option(
        None, "--nb", "--notebook", help="Notebook path relative to the project root (default: notebooks/train.ipynb).",
    ),
    name: str | None = typer.Option(None, *NAME, help="Training name (default: a random one)."),
    proj: ProjOption = None,
    params: str | None = typer.Option(
        None, "--params", "-p", help="JSON object injected into the parameters cell."
    ),
    tag: str = typer.Option("latest", *TAG, help="Build version to run on."),
    env: Annotated[
        list[str] | None, typer.Option(*ENV, help="KEY=VALUE for the task (repeatable).")
    ] = None,
    dataset: Annotated[
        list[str] | None, typer.Option(*DATASET, help="MODEL:DATASET to stage (repeatable).")
    ] = None,
    pretrained: Annotated[
        list[str] | None, typer.Option("--pretrained", help="MODEL:VERSION to stage (repeatable).")
    ] = None,
    detach: bool = typer.Option(False, "--detach", help="Return once started instead of following it."),
    target_deploy_name: str | None = typer.Option(
        None, "--target-deploy", "--td", help=target_deploy.TD_HELP
    ),
    background: BackgroundOption = False,
    resource_profile: ResourceProfileOption = None,
    mount: MountOption = None,
) -> None:
    """Run a training notebook; exit 0 only if it FINISHED."""
    atoll = get_context(ctx)
    state = get_state(ctx)
    target = None
    if target_deploy_name is not None:
        target = target_deploy.check(atoll, target_deploy_name, proj, detach or state.background)
    record = api.new_training(
        atoll,
        default_notebook(atoll, proj, tag, notebook, "notebooks/train.ipynb"),
        proj=proj,
        name=name,
        params=parse_json_option(params, "--params", expect=dict),
        tag=tag,
        env=parse_kv(env, "--env"),
        datasets=dataset,
        pretrained=pretrained,
        resource_profile=resource_profile,
        mounts=mount,
    )
    if detach or state.background:
        render(record)
        return
    table = state.output == "table"
    out = Console(stderr=not table, soft_wrap=True, highlight=False)
    print(f"training {record.ref} started (task {record.task_id})", file=sys.stderr, flush=True)
    try:
        final = _follow(atoll, record, show_bar=table, out=out)
    except KeyboardInterrupt:
        print(
            f"\nstopped following; training {record.ref} goes on "
            f"(`atoll train logs --name {record.name} --follow`, `atoll train cancel --name {record.name}`)",
            file=sys.stderr,
        )
        raise
    if table:
        stored = api.notebook_location(atoll, final)
        print(
            f"training {final.ref}: {final.task.state.value}"
            + (f"; executed notebook: {stored}" if stored else ""),
            file=sys.stderr,
            flush=True,
        )
    if target is not None:
        target_deploy.update(atoll, target, final, state.output)
    elif not table:
        render(final)
    _outcome(atoll, final)


#: The options naming one training.
KEY = [option("name", str, *NAME, text="Training name."), PROJ]


def _notebook_location(atoll: AtollContext, record: Training) -> None:
    stored = api.notebook_location(atoll, record)
    if stored and current_state().output == "table":
        print(f"executed notebook: {stored}", flush=True)


add_record_commands(
    app,
    key=KEY,
    info=("Show a training (a task that died without reporting is recorded FAILED).", api.get_training),
    after_info=_notebook_location,
    list_=(
        "List the trainings of a project.",
        lambda atoll, filter_, proj: api.list_trainings(atoll, proj, filter_),
    ),
    rm=(
        "Remove a training, its task directory and its executed notebook (-s to stop a running one).",
        lambda atoll, name, proj: api.remove_training(
            atoll, name, proj, force=current_state().skip_questions
        ),
    ),
    kind="train",
    list_options=[PROJ],
    order=("info", "list", "rm"),
)


def _cancel(atoll: AtollContext, name: str, proj: str | None) -> None:
    record = api.cancel_training(atoll, name, proj)
    render_done(
        f"cancelled training {record.ref}",
        cancelled="train",
        proj=record.proj,
        name=record.name,
        state=record.task.state.value,
    )


app.command("cancel")(command(_cancel, KEY, "Stop a running training and record it CANCELLED."))


def _logs(atoll: AtollContext, name: str, proj: str | None, follow: bool) -> None:
    for line in api.training_logs(atoll, name, proj, follow=follow):
        print(line, flush=follow)


FOLLOW = option("follow", bool, "--follow", "-f", default=False, text="Keep printing until the training ends.")
app.command("logs")(command(_logs, [*KEY, FOLLOW], "Print what the training's notebook printed."))
