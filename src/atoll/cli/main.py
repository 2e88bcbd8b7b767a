"""The ``atoll`` command: global options, subject mounting and the one error handler.

Global options come before the subject (``atoll -o json -s model rm --name m``).
Every failure leaves through :func:`main`:

- :class:`~atoll.errors.AtollError` → ``error: <message>`` on stderr, its exit code;
- a command-line mistake (unknown option, missing value) → one line, exit 2;
- anything else → ``internal error: <message>``, exit 1.

A traceback is printed only with ``--debug``.
"""

from __future__ import annotations

import logging
import sys
import traceback
from enum import Enum
from typing import Annotated

import typer

from atoll import __version__
from atoll.cli.common import CliState, current_state, render, set_state
from atoll.cli.lazy import SUBJECTS, LazyGroup
from atoll.cli.logfiles import error_line, finish, setup_logging
from atoll.domain.values import check_text
from atoll.errors import AtollError

try:  # Typer >= 0.20 vendors click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError
    from typer._click.exceptions import UsageError as ClickUsageError
except ImportError:  # pragma: no cover - older Typer on plain click
    from click.exceptions import ClickException, NoArgsIsHelpError  # type: ignore[no-redef,assignment]
    from click.exceptions import UsageError as ClickUsageError  # type: ignore[no-redef,assignment]

log = logging.getLogger("atoll")

app = typer.Typer(
    name="atoll",
    cls=LazyGroup,
    help="Atoll: notebooks in, versioned models and replicated prediction services out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    yaml = "yaml"


class LogLevel(str, Enum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    WARN = "WARN"  # as the modelled framework spells it
    ERROR = "ERROR"


@app.callback()
def _global_options(
    ctx: typer.Context,
    log_level: Annotated[
        LogLevel | None,
        typer.Option("-l", "--log-level", case_sensitive=False, help="Log level (default: logger.level)."),
    ] = None,
    debug: bool = typer.Option(False, "-d", "--debug", help="Debug logs and tracebacks on errors."),
    pretty: bool = typer.Option(False, "-p", "--pretty", help="Indent JSON output."),
    skip_questions: bool = typer.Option(
        False, "-s", "--skip-questions", help="Answer yes to every question (cascading deletes...)."
    ),
    background: bool = typer.Option(
        False,
        "-b",
        "--background",
        help="Print nothing: output and logs go to the log file (logger.directory, default $ATOLL_HOME/logs); "
        "`train new` and `note` return once started (like --detach), `depl new` once its replicas are started.",
    ),
    output: Annotated[
        OutputFormat, typer.Option("-o", "--output", case_sensitive=False, help="Output format.")
    ] = OutputFormat.table,
) -> None:
    """Atoll: notebooks in, versioned models and replicated prediction services out."""
    state = CliState(
        log_level=("WARNING" if log_level is LogLevel.WARN else log_level.value) if log_level else None,
        debug=debug,
        pretty=pretty,
        skip_questions=skip_questions,
        background=background,
        output=output.value,  # type: ignore[arg-type]
    )
    set_state(state)
    ctx.obj = state
    setup_logging(state)


@app.command("version")
def version() -> None:
    """Print Atoll's version."""
    if current_state().output == "table":
        print(f"atoll {__version__}")
    else:
        render({"version": __version__})


@app.command("get-me-started")
def get_me_started(ctx: typer.Context) -> None:
    """Set up the islands a newcomer needs (the router; native db/files/registry when configured)."""
    from atoll.api.get_me_started import get_me_started as run
    from atoll.cli.common import get_context

    steps = run(get_context(ctx))
    render(steps, columns=["island", "done", "url", "message"])
    failed = [step.island for step in steps if step.done == "failed"]
    if failed:
        raise AtollError(f"{len(failed)} island(s) could not be set up: {', '.join(failed)} (see above)")


# Subjects, in help order; each module defines ``app = typer.Typer(...)``.
# Modules written by other parts (train, depl...) are mounted once they exist.
SUBJECTS.update({name: f"atoll.cli.{name}" for name in (
    "model", "proj", "ds", "movers", "bvers", "train", "depl", "tchest", "key", "check", "config", "note", "isle",
    "image", "migrate", "ui", "kube",
)})


def _debug_requested(args: list[str]) -> bool:
    if current_state().debug:
        return True
    for arg in args:  # global options come before the subject
        if not arg.startswith("-"):
            return False
        if arg in ("-d", "--debug") or (arg.startswith("-") and not arg.startswith("--") and "d" in arg[1:]):
            return True
    return False


def _one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return " ".join(lines) if lines else text


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the command and map every failure to an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = typer.main.get_command(app)
    code = 0
    try:
        for arg in args:  # undecodable bytes arrive as lone surrogates: refuse them before any use
            check_text(arg, f"argument {arg.encode('utf-8', 'backslashreplace').decode()!r}")
        rv = command.main(args=args, prog_name="atoll", standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
    except NoArgsIsHelpError as exc:
        # Typer's Rich help was already printed while the error was raised.
        text = exc.format_message()
        if text.strip():
            print(text, file=sys.stderr)
        code = 2
    except ClickUsageError as exc:
        where = f"{exc.ctx.command_path}: " if exc.ctx is not None else ""
        error_line(f"error: {where}{_one_line(exc.format_message())}")
        code = 2
    except ClickException as exc:
        error_line(f"error: {_one_line(exc.format_message())}")
        code = exc.exit_code
    except typer.Abort:
        error_line("error: aborted")
        code = 1
    except AtollError as exc:
        if _debug_requested(args):
            traceback.print_exc()
        error_line(f"error: {_one_line(str(exc))}")
        code = exc.exit_code
    except KeyboardInterrupt:
        error_line("error: interrupted")
        code = 130
    except BrokenPipeError:
        code = 1
    except Exception as exc:  # noqa: BLE001 - the one place that catches everything
        if _debug_requested(args):
            traceback.print_exc()
        error_line(f"internal error: {type(exc).__name__}: {_one_line(str(exc))}")
        code = 1
    finally:
        try:
            current_state().close()
        except Exception:
            log.debug("closing the stores failed", exc_info=True)
        finish()
    sys.stdout.flush()
    sys.exit(code)


__all__ = ["app", "main"]


if __name__ == "__main__":
    main()
