"""``atoll config``: the effective configuration."""

from __future__ import annotations

import typer

from atoll.cli.common import get_context, render
from atoll.config import mask_url

app = typer.Typer(help="Configuration.", no_args_is_help=True)


@app.command("show")
def show(ctx: typer.Context) -> None:
    """Print the effective configuration (every layer merged), credentials masked."""
    config = get_context(ctx).config
    data = config.masked()
    if data["file_store"].get("url"):
        data["file_store"]["url"] = mask_url(data["file_store"]["url"])
    data["metadata"]["effective_url"] = mask_url(config.metadata_url)
    data["file_store"]["effective_path"] = str(config.file_store_path)
    render(data)
