"""Log files: ``logger.directory``, rotation at ``logger.max_bytes`` keeping ``logger.backup_count``,
and ``-b/--background`` writing there with nothing on the terminal."""

from __future__ import annotations

import logging
import stat
from pathlib import Path
from typing import Any

import pytest

from atoll.config import load_config
from atoll.errors import ConfigError


def _config(tmp_path: Path, **logger: Any) -> Any:
    environ = {"ATOLL_HOME": str(tmp_path / "home")}
    environ |= {f"ATOLL_LOGGER__{key.upper()}": str(value) for key, value in logger.items()}
    return load_config(cwd=tmp_path, environ=environ)


def test_the_file_rotates_at_max_bytes_keeping_backup_count_files(tmp_path: Path) -> None:
    config = _config(tmp_path, directory=tmp_path / "logs", max_bytes=1000, backup_count=2)
    handler = config.log_file_handler()
    logger = logging.getLogger("atoll.test-rotation")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        for i in range(60):  # ~70 bytes a line: 4000+ bytes, rotated several times
            logger.info("line %03d %s", i, "x" * 20)
    finally:
        logger.removeHandler(handler)
        handler.close()
    names = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert names == ["atoll.log", "atoll.log.1", "atoll.log.2"]  # older files dropped
    for name in names:
        path = tmp_path / "logs" / name
        assert 0 < path.stat().st_size <= 1000
        assert stat.S_IMODE(path.stat().st_mode) == 0o600  # output may hold URLs with tokens
    assert "line 059" in (tmp_path / "logs" / "atoll.log").read_text()
    assert "line 000" not in "".join((tmp_path / "logs" / n).read_text() for n in names)


def test_logger_settings_are_checked(tmp_path: Path) -> None:
    config = _config(tmp_path, level="warn")
    assert (config.logger.level, config.log_dir) == ("WARNING", tmp_path / "home" / "logs")
    assert (config.logger.max_bytes, config.logger.backup_count) == (1024 * 1024, 1)
    for bad in ({"max_bytes": -1}, {"backup_count": "many"}, {"file_name": "a/b.log"}, {"level": "LOUD"}):
        with pytest.raises(ConfigError, match="logger"):
            _config(tmp_path, **bad)


def test_background_output_lands_in_the_file_not_on_the_terminal(atoll: Any) -> None:
    res = atoll.ok("-b", "-o", "json", "model", "new", "--name", "iris", "--desc", "kept in the log")
    assert (res.out, res.err) == ("", "")
    text = (atoll.home / "logs" / "atoll.log").read_text()
    assert "atoll.stdout:" in text and '"desc": "kept in the log"' in text
    # logger.directory and file_name move it; a failure still says why on stderr (and in the file).
    logs = atoll.cwd / "my-logs"
    env = {"ATOLL_LOGGER__DIRECTORY": str(logs), "ATOLL_LOGGER__FILE_NAME": "cli.log"}
    line = atoll.fails(1, "-b", "model", "new", "--name", "iris", env=env)
    assert "already exists" in line
    assert line in (logs / "cli.log").read_text()


def test_a_configured_directory_also_keeps_foreground_logs(atoll: Any) -> None:
    logs = atoll.cwd / "logs"
    env = {"ATOLL_LOGGER__DIRECTORY": str(logs)}
    assert atoll.ok("model", "list", env=env).out.strip()  # the table is on the terminal as usual
    line = atoll.fails(1, "model", "info", "--name", "nope", env=env)  # and the error on stderr
    assert line in (logs / "atoll.log").read_text()


def test_logs_go_to_the_configured_file_at_the_chosen_level(tmp_path: Path) -> None:
    from atoll.cli import logfiles
    from atoll.cli.state import CliState

    root = logging.getLogger()
    level = root.level
    config = _config(tmp_path, directory=tmp_path / "logs")
    try:
        logfiles.setup_logging(CliState(log_level="INFO", config=config))
        logging.getLogger("atoll.somewhere").info("kept")
        logging.getLogger("atoll.somewhere").debug("below the level")
    finally:
        logfiles.finish()
        root.setLevel(level)
    text = (tmp_path / "logs" / "atoll.log").read_text()
    assert "INFO atoll.somewhere: kept" in text and "below the level" not in text
    ours = str(tmp_path / "logs" / "atoll.log")
    assert not [h for h in root.handlers if getattr(h, "baseFilename", None) == ours]  # closed at the end


def test_background_never_asks_on_the_terminal(atoll: Any) -> None:
    """A question would go to the log file and wait unseen: -b answers no, or asks for --password-stdin."""
    import os
    import pty
    import subprocess
    import sys

    terminal, stdin = pty.openpty()
    try:
        done = subprocess.run([str(Path(sys.executable).parent / "atoll"), "-b", "tchest", "new", "-n", "db"],
                              stdin=stdin, capture_output=True, text=True, env=atoll.environ(), cwd=atoll.cwd,
                              timeout=60, check=False)
    finally:
        os.close(terminal)
        os.close(stdin)
    assert done.returncode == 2 and "--password-stdin" in done.stderr
