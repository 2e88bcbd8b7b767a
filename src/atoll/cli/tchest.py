"""``atoll tchest``: treasure chests, named credentials kept encrypted.

The secret is read from stdin (``--password-stdin``) or a hidden prompt,
never from a command-line argument (which ``ps`` and shell history show),
and never printed.

Chests live in the chest store in ``ATOLL_HOME`` whatever ``atoll.yaml``
names, so these commands never open the configured metadata store (but
``import``, which moves the chests earlier versions made there).
"""

from __future__ import annotations

import sys

import typer

from atoll.api import tchests as api
from atoll.cli.common import NAME, can_ask, confirm, get_context, parse_json_option, render
from atoll.cli.records import add_record_commands, option
from atoll.errors import UsageError

app = typer.Typer(help="Treasure chests: named credentials.", no_args_is_help=True)

STDIN = ("--password-stdin", "--pswd-stdin")  # the modelled framework's --pswd, never on the command line
STDIN_HELP = "Read the secret from stdin (e.g. `printf %s \"$PW\" | atoll tchest new ...`)."


def _read_secret(password_stdin: bool, *, required: bool) -> str | None:
    if password_stdin:
        secret = sys.stdin.read()
        secret = secret.removesuffix("\n")
        secret = secret.removesuffix("\r")
        if not secret:
            raise UsageError("--password-stdin: read an empty secret")
        return secret
    if not can_ask():
        if required:
            raise UsageError("no terminal to ask for the secret (or -b): pipe it with --password-stdin")
        return None
    if required:
        return str(typer.prompt("Secret", hide_input=True, confirmation_prompt=True, err=True))
    secret = str(typer.prompt("New secret (empty keeps the current one)", default="", show_default=False,
                              hide_input=True, err=True))
    return secret or None


@app.command("new")
def new(
    ctx: typer.Context,
    name: str = typer.Option(..., *NAME, help="Treasure chest name."),
    desc: str = typer.Option("", "--desc", help="Description."),
    details: str | None = typer.Option(None, "--details", help="JSON object of free details."),
    user: str = typer.Option("", "--user", "-u", help="User name."),
    password_stdin: bool = typer.Option(False, *STDIN, help=STDIN_HELP),
) -> None:
    """Record a credential; the secret is asked for (hidden) or read from stdin."""
    details_obj = parse_json_option(details, "--details", expect=dict)
    atoll = get_context(ctx)
    secret = _read_secret(password_stdin, required=True)
    render(api.new_tchest(atoll, name, secret or "", user=user, desc=desc, details=details_obj))


@app.command("update")
def update(
    ctx: typer.Context,
    name: str = typer.Option(..., *NAME, help="Treasure chest name."),
    desc: str | None = typer.Option(None, "--desc", help="New description."),
    details: str | None = typer.Option(None, "--details", help="JSON object replacing the details."),
    user: str | None = typer.Option(None, "--user", "-u", help="New user name."),
    password_stdin: bool = typer.Option(False, *STDIN, help=STDIN_HELP),
) -> None:
    """Change a credential; the secret changes only when a new one is given."""
    details_obj = parse_json_option(details, "--details", expect=dict)
    atoll = get_context(ctx)
    api.get_tchest(atoll, name)  # fail before prompting
    secret = _read_secret(password_stdin, required=False)
    render(api.update_tchest(atoll, name, secret=secret, user=user, desc=desc, details=details_obj))


@app.command("import")
def import_(ctx: typer.Context) -> None:
    """Move the chests earlier versions kept in the configured metadata store into ATOLL_HOME."""
    render(api.import_tchests(get_context(ctx)))


add_record_commands(
    app,
    key=[option("name", str, *NAME, text="Treasure chest name.")],
    info=("Show a credential (never its secret).", api.get_tchest),
    rm=("Remove a credential.", lambda atoll, name: api.delete_tchest(atoll, name, confirm=confirm)),
    list_=("List credentials (never their secrets).", api.list_tchests),
    kind="tchest",
)
