"""``atoll migrate``: copy the installation to other metadata / file stores.

    atoll migrate --to-metadata postgresql://db.example.com/atoll --to-metadata-tchest team-db \\
                  --to-files '{"type": "s3", "url": "http://s3.example.com", "bucket": "atoll", "tchest": "team-s3"}'

``--to-files`` takes the keys of the ``file_store`` section of ``atoll.yaml``
as JSON or YAML, inline or in a file. Credentials go in treasure chests
(``--to-metadata-tchest``, ``tchest:``), not on the command line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
import yaml

from atoll.api.migrate import migrate
from atoll.cli.common import get_context, render
from atoll.errors import UsageError

app = typer.Typer(help="Copy every record and stored file to other stores (verified, resumable).")


@app.callback(invoke_without_command=True)
def run(
    ctx: typer.Context,
    to_metadata: str | None = typer.Option(None, "--to-metadata", help="URL of the target metadata store."),
    to_metadata_tchest: str | None = typer.Option(
        None, "--to-metadata-tchest", help="Treasure chest with the target database's user and password."
    ),
    to_files: str | None = typer.Option(
        None, "--to-files", help="Target file_store settings: JSON/YAML mapping, inline or a file path."
    ),
    force: bool = typer.Option(False, "--force", help="Copy into targets that already hold data."),
) -> None:
    """Copy the installation to other stores, then verify counts and checksums."""
    if ctx.invoked_subcommand is not None:  # pragma: no cover - no subcommands
        return
    report = migrate(
        get_context(ctx),
        to_metadata,
        _settings(to_files),
        to_metadata_tchest=to_metadata_tchest,
        force=force,
        progress=lambda message: typer.echo(message, err=True),
    )
    render(report)
    typer.echo("now point atoll.yaml (metadata / file_store) at the new stores", err=True)


def _settings(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    source = Path(text).expanduser()
    if not text.lstrip().startswith(("{", "[")) and source.is_file():
        text = source.read_text()
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UsageError(f"--to-files: not JSON or YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(value, dict):
        raise UsageError('--to-files: expected a mapping such as {"type": "s3", "url": ..., "bucket": ...}')
    return value
