"""The Atoll error tree.

Every error a user can see derives from :class:`AtollError` and carries the
process exit code the CLI uses and the HTTP status the services answer with::

    AtollError                      exit 1, HTTP 500
    ├── UsageError                  exit 2, HTTP 400   bad option, name or JSON
    │   ├── InvalidNameError        exit 2, HTTP 400
    │   ├── ConfigError             exit 2, HTTP 400   unknown key, wrong type
    │   └── ValidationError         exit 2, HTTP 400   record or files break a schema
    ├── NotFoundError               exit 1, HTTP 404
    ├── AlreadyExistsError          exit 1, HTTP 409
    ├── ConflictError               exit 1, HTTP 409   dependents, stale revision
    ├── BackendError                exit 1, HTTP 502   a store or engine refused
    │   └── BackendUnavailableError exit 1, HTTP 503   daemon or database down
    ├── ExecutionError              exit 1, HTTP 500   a notebook/task failed
    └── CancelledError              exit 1, HTTP 499

Backends translate driver errors (sqlalchemy, botocore, docker…) into these at
the boundary with ``raise … from``; nothing else reaches a user.
"""

from __future__ import annotations


class AtollError(Exception):
    """Root of every error Atoll raises on purpose."""

    exit_code: int = 1
    http_status: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(AtollError):
    """The caller asked for something malformed (exit code 2)."""

    exit_code = 2
    http_status = 400


class InvalidNameError(UsageError):
    """A name breaks the naming rule (DNS-safe, 1-63 chars)."""


class ConfigError(UsageError):
    """The configuration has an unknown key, a wrong type or a bad value."""


class ValidationError(UsageError):
    """A record or a set of files does not match its schema."""


class NotFoundError(AtollError):
    """A referenced record, file or task does not exist."""

    http_status = 404


class AlreadyExistsError(AtollError):
    """A record with that name already exists."""

    http_status = 409


class ConflictError(AtollError):
    """The operation conflicts with the current state (dependents, stale write)."""

    http_status = 409


class BackendError(AtollError):
    """A store, engine or service answered with an error."""

    http_status = 502


class BackendUnavailableError(BackendError):
    """A store, daemon or service cannot be reached."""

    http_status = 503


class ExecutionError(AtollError):
    """A task (notebook, build, replica) failed.

    Attributes:
        cell: index of the failing notebook cell, when known.
        log_tail: the last lines of the task's output, when known.
    """

    def __init__(self, message: str, *, cell: int | None = None, log_tail: str = "") -> None:
        super().__init__(message)
        self.cell = cell
        self.log_tail = log_tail


class CancelledError(AtollError):
    """A task was cancelled by the user."""

    http_status = 499


__all__ = [
    "AlreadyExistsError",
    "AtollError",
    "BackendError",
    "BackendUnavailableError",
    "CancelledError",
    "ConfigError",
    "ConflictError",
    "ExecutionError",
    "InvalidNameError",
    "NotFoundError",
    "UsageError",
    "ValidationError",
]
