"""``atoll image build-base``: build the Atoll base image every project image starts FROM."""

from __future__ import annotations

import time

import typer

from atoll.cli.common import get_context, print_err, render_done

app = typer.Typer(help="Docker images Atoll builds (the base image).", no_args_is_help=True)


@app.command("build-base")
def build_base(
    ctx: typer.Context,
    python_image: str | None = typer.Option(
        None, "--python-image", help="Python image to start from (default: docker.python_image)."
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help="Rebuild every layer."),
) -> None:
    """Build atoll/base:<version> from the Python image and this Atoll."""
    from atoll.containers.swarm.engine import connect
    from atoll.containers.swarm.images import base_image_ref, build_base_image

    config = get_context(ctx).config
    client = connect(config)
    try:
        started = time.monotonic()
        image_id = build_base_image(client, config, print_err, python_image=python_image, no_cache=no_cache)
    finally:
        client.close()
    ref = base_image_ref(config)
    render_done(
        f"built {ref} ({image_id[:19]}) in {time.monotonic() - started:.0f}s",
        image=ref,
        image_id=image_id,
    )
