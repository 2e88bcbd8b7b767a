"""Where an ``atoll`` command's logs and output go: the terminal, and the log files.

- Logs (``logging``) go to stderr at ``-l``/``logger.level``, and also to
  ``logger.directory``'s file when one is configured.
- ``-b/--background`` (global, or ``train new -b``, ``note -b``) puts nothing
  on the terminal: what the command prints (its result, progress) and its logs
  are appended to the log file (``logger.directory``, else ``$ATOLL_HOME/logs``),
  one line per record (``atoll.stdout`` / ``atoll.stderr``). Only a failure's
  one-line ``error: ...`` still reaches stderr as well, so a script sees why.

The file rotates at ``logger.max_bytes`` keeping ``logger.backup_count`` old
files (:class:`logging.handlers.RotatingFileHandler`, via
:meth:`atoll.config.Config.log_file_handler`).
"""

from __future__ import annotations

import io
import logging
import sys
from typing import TextIO

from atoll.cli.state import CliState
from atoll.config import Config, load_config
from atoll.errors import AtollError

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_file_handler: logging.Handler | None = None
_terminal: tuple[TextIO, TextIO] | None = None  # stdout, stderr while they are redirected


class _LineStream(io.TextIOBase):
    """A text stream writing each complete line as one log record (a partial line waits for its end)."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__()
        self._logger = logger
        self._pending = ""

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        lines = (self._pending + text).split("\n")
        self._pending = lines.pop()
        for line in lines:
            self._logger.info("%s", line.rstrip("\r"))
        return len(text)

    def close(self) -> None:
        if self._pending:
            self._logger.info("%s", self._pending)
            self._pending = ""
        super().close()


def _config(state: CliState) -> Config | None:
    if state.config is None:
        try:
            state.config = load_config()  # reused by get_context
        except AtollError:
            return None  # the config error is reported when a command opens it
    return state.config


def setup_logging(state: CliState) -> None:
    """Configure logging for this command from the global options and ``logger.*``.

    Raises:
        ConfigError: ``-b`` or ``logger.directory`` asks for a log file that cannot be written.
    """
    config = _config(state)
    level = "DEBUG" if state.debug else state.log_level or (config.logger.level if config else "WARNING")
    root = logging.getLogger()
    if not state.background:
        logging.basicConfig(level=getattr(logging, level), stream=sys.stderr, format=FORMAT)
    root.setLevel(getattr(logging, level))
    if state.background or (config is not None and config.logger.directory):
        _open_file(config or Config())
    if state.background:
        go_background(state)


def _open_file(config: Config) -> logging.Handler:
    global _file_handler
    if _file_handler is None:
        _file_handler = config.log_file_handler()
        logging.getLogger().addHandler(_file_handler)
    return _file_handler


def go_background(state: CliState) -> None:
    """From now on nothing on the terminal: output and logs go to the log file (``-b``)."""
    global _terminal
    state.background = True
    handler = _open_file(_config(state) or Config())
    if _terminal is not None:
        return
    root = logging.getLogger()
    for other in list(root.handlers):  # the terminal's handler
        if other is not handler and isinstance(other, logging.StreamHandler) and not isinstance(
            other, logging.FileHandler
        ):
            root.removeHandler(other)
    streams = []
    for name in ("stdout", "stderr"):
        logger = logging.getLogger(f"atoll.{name}")
        logger.propagate = False  # output is kept whatever the log level
        logger.setLevel(logging.INFO)
        if handler not in logger.handlers:
            logger.addHandler(handler)
        streams.append(_LineStream(logger))
    _terminal = (sys.stdout, sys.stderr)
    sys.stdout, sys.stderr = streams  # type: ignore[assignment]


def error_line(line: str) -> None:
    """Print a failure's one line on the terminal's stderr, and into the log file when there is one."""
    if _file_handler is not None:
        _file_handler.handle(logging.LogRecord("atoll.stderr", logging.ERROR, __file__, 0, "%s", (line,), None))
    print(line, file=_terminal[1] if _terminal is not None else sys.stderr, flush=True)


def finish() -> None:
    """Flush what is pending, give the terminal back and close the log file (end of the command)."""
    global _file_handler, _terminal
    if _terminal is not None:
        for stream in (sys.stdout, sys.stderr):
            if isinstance(stream, _LineStream):
                stream.close()
        sys.stdout, sys.stderr = _terminal
        _terminal = None
    if _file_handler is not None:
        for name in ("", "atoll.stdout", "atoll.stderr"):
            logging.getLogger(name).removeHandler(_file_handler)
        _file_handler.close()
        _file_handler = None


__all__ = ["FORMAT", "error_line", "finish", "go_background", "setup_logging"]
