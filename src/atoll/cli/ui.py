"""``atoll ui``: the web UI (token-protected, loopback unless --host says otherwise)."""

from __future__ import annotations

import sys

import typer

from atoll.cli.common import get_context, get_state, render
from atoll.ui import require_dependencies

app = typer.Typer(help="The web UI: projects, versions and their metrics, trainings, deployments.",
                  invoke_without_command=True)


@app.callback()
def ui(
    ctx: typer.Context,
    port: int | None = typer.Option(None, "--port", help="Port (default: ui.port, 30090; 0 picks a free one)."),
    host: str | None = typer.Option(None, "--host", help="Address to listen on (default: ui.host, 127.0.0.1)."),
) -> None:
    """Serve the UI until Ctrl-C; open the printed URL (it carries the access token)."""
    require_dependencies()
    from atoll.ui.server import bind, is_loopback, serve, url_of
    from atoll.ui.tokens import new_token

    atoll = get_context(ctx)
    host = host or atoll.config.ui.host
    sock = bind(host, atoll.config.ui.port if port is None else port)
    token = new_token()
    url = f"{url_of(sock, host)}/?token={token}"
    if get_state(ctx).output == "table":
        print(f"Atoll UI: {url}", flush=True)
    else:
        render({"url": url})
        sys.stdout.flush()
    if not is_loopback(host):
        print(f"warning: the UI listens on {host}, beyond this machine; anyone with the URL gets in",
              file=sys.stderr, flush=True)
    print("Press Ctrl-C to stop it.", file=sys.stderr, flush=True)
    serve(atoll, sock, token)
