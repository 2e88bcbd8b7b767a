"""``atoll depl``: deployments (replicated prediction services)."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Annotated, Any

import typer

from atoll.api import deployments as api
from atoll.api.context import AtollContext
from atoll.cli.common import (
    ENV,
    MOVERS,
    TAG,
    ProjOption,
    default_notebook,
    get_context,
    get_state,
    parse_json_option,
    parse_kv,
    print_err,
    render,
)
from atoll.cli.records import PROJ, add_record_commands, command, option
from atoll.cli.taskopts import MountOption, ResourceProfileOption
from atoll.errors import ExecutionError

app = typer.Typer(help="Deployments: replicas of a prediction notebook serving HTTP.", no_args_is_help=True)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@app.command("new")
def new(
    ctx: typer.Context,
    name: str | None = typer.Option(None, "--name", help="Deployment name (random when omitted)."),
    proj: ProjOption = None,
    notebook: str | None = typer.Option(
        None, "--nb", "--notebook",
        help="Prediction notebook, relative to the project root (default: notebooks/predict.ipynb).",
    ),
    params: str | None = typer.Option(None, "--params", help="Notebook parameters as a JSON object."),
    tag: str = typer.Option("latest", *TAG, help="Build version to run."),
    n_tasks: int = typer.Option(1, "-n", "--n-tasks", help="Number of replicas."),
    port: int | None = typer.Option(None, "--port", help="Also serve the replicas balanced on 127.0.0.1:PORT."),
    env: Annotated[list[str] | None, typer.Option(*ENV, help="KEY=VALUE for the replicas (repeatable).")] = None,
    movers: Annotated[list[str] | None, typer.Option(*MOVERS, help="MODEL:VERSION to stage (repeatable).")] = None,
    timeout: float = typer.Option(api.DEFAULT_TIMEOUT, "--timeout", help="Seconds a replica has to get healthy."),
    resource_profile: ResourceProfileOption = None,
    mount: MountOption = None,
    background: bool = typer.Option(
        False, "-b", "--background", help="Return once the replicas are started (DEPLOYING); `depl info` follows."
    ),
) -> None:
    """Deploy a prediction notebook (or roll an existing deployment over to new settings).

    Waits until every replica is healthy (or the roll-out failed); with
    -b/--background (here or global) returns once they are started, the
    record DEPLOYING until a later `depl info` / `depl list` finds it RUNNING or FAILED.
    """
    state = get_state(ctx)
    background = background or state.background
    atoll = get_context(ctx)
    quiet = state.output != "table"
    # SIGTERM like Ctrl-C: the deployment is recorded FAILED and nothing it started is left running.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        record = api.new_deployment(
            atoll,
            name,
            proj,
            notebook=default_notebook(atoll, proj, tag, notebook, "notebooks/predict.ipynb"),
            params=parse_json_option(params, "--params", expect=dict),
            tag=tag,
            n_tasks=n_tasks,
            port=port,
            env=parse_kv(env, "--env"),
            movers=movers or [],
            timeout=timeout,
            log=print_err if quiet else print,
            resource_profile=resource_profile,
            mounts=mount,
            wait=not background,
        )
    except ExecutionError as exc:
        if exc.log_tail:
            print_err(exc.log_tail)
        raise
    except KeyboardInterrupt:
        print_err("error: interrupted (a new deployment is recorded FAILED and nothing of it keeps running)")
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    info = api.deployment_info(atoll, record.name, record.proj)
    if quiet:
        render(info)
    else:
        _summary(info)
        if background:
            print(f"  started in the background: `atoll depl info --name {record.name} --proj {record.proj}` follows it")


def _summary(info: dict[str, Any]) -> None:
    """A few lines for people; ``depl info`` and ``-o json`` show the whole record."""
    movers = ", ".join(f"{v['model']}:{v['name']}" for v in info["movers"]) or "none"
    print(f"deployment {info['proj']}:{info['name']} {info['task']['state']}, availability {info['availability']}")
    print(f"  build {info['bvers']['proj']}:{info['bvers']['name']}, notebook {info['notebook']}, versions {movers}")
    for replica in info["replicas"]:
        print(f"  {replica['name']:<24} {replica['state']:<10} {replica['url']}")
    if info["router_url"]:
        print(f"  through the router: POST {info['router_url']}")
        if info.get("router"):  # serving, but with fewer router tasks than wanted
            print(f"  router:             {info['router']}")
    else:
        print(f"  through the router: DOWN: {info.get('router')}")
    if info.get("balanced_url"):
        print(f"  balanced:           POST {info['balanced_url']}")


#: The options naming one deployment.
KEY = [option("name", str, "--name", text="Deployment name."), PROJ]

add_record_commands(
    app,
    key=KEY,
    info=(
        "Show a deployment, each replica's live state and its availability (healthy/N).",
        api.deployment_info,
    ),
    rm=("Stop every replica of a deployment and remove it.", api.remove_deployment),
    list_=(
        "List the deployments of a project.",
        lambda atoll, filter_, proj: api.list_deployments(atoll, proj, filter_),
    ),
    kind="depl",
    list_options=[PROJ],
)


def _logs(atoll: AtollContext, name: str, proj: str | None, follow: bool) -> None:
    try:
        for line in api.deployment_logs(atoll, name, proj, follow):
            print(line, flush=True)
    except KeyboardInterrupt:
        pass


FOLLOW = option("follow", bool, "-f", "--follow", default=False, text="Keep printing new lines (Ctrl-C to stop).")
app.command("logs")(command(_logs, [*KEY, FOLLOW], "Print what the replicas printed."))
