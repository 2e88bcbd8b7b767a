"""Subjects imported only when used.

``atoll model list`` should not pay for importing the training, deployment
and island code (and their dependencies); the root group therefore keeps a
mapping ``subject -> module`` and imports a subject's module the first time
the subject is looked up. Help listings still show every subject.

A subject whose module does not exist (a plug-in not installed, or a part
still being written) is simply absent; one that exists but fails to import
becomes a subject whose every use reports the failure, so the other subjects
keep working.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterator, MutableMapping
from typing import Any

import typer
import typer.main
from typer.core import TyperGroup

from atoll.errors import AtollError


def _module_exists(module_name: str) -> bool:
    try:
        return importlib.util.find_spec(module_name) is not None
    except (ImportError, ValueError):
        return False


def _load(name: str, module_name: str) -> Any:
    try:
        module = importlib.import_module(module_name)
        group = typer.main.get_group(module.app)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise KeyError(name) from exc
        group = _broken(name, exc)
    except Exception as exc:  # noqa: BLE001 - reported when the subject is used
        group = _broken(name, exc)
    group.name = name
    return group


def _broken(name: str, exc: BaseException) -> Any:
    broken = typer.Typer(help=f"(unavailable: {exc})", invoke_without_command=True)

    @broken.callback(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
    def _fail() -> None:
        raise AtollError(f"the '{name}' commands failed to load: {type(exc).__name__}: {exc}") from exc

    return typer.main.get_group(broken)


class LazyCommands(MutableMapping[str, Any]):
    """Commands of a group: loaded ones, plus subjects imported on first access."""

    def __init__(self, loaded: MutableMapping[str, Any], pending: dict[str, str]) -> None:
        self._loaded = dict(loaded)
        self._pending = {name: mod for name, mod in pending.items() if _module_exists(mod)}

    def __getitem__(self, name: str) -> Any:
        if name in self._loaded:
            return self._loaded[name]
        module_name = self._pending.pop(name)  # KeyError when unknown
        self._loaded[name] = _load(name, module_name)
        return self._loaded[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._pending.pop(name, None)
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        if self._pending.pop(name, None) is None:
            del self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter([*self._loaded, *self._pending])

    def __len__(self) -> int:
        return len(self._loaded) + len(self._pending)

    def __contains__(self, name: object) -> bool:
        return name in self._loaded or name in self._pending


# The subjects of ``atoll`` and the modules defining their ``app`` (see cli/main.py).
SUBJECTS: dict[str, str] = {}


class LazyGroup(TyperGroup):
    """The root group: its subjects come from :data:`SUBJECTS`, imported when used."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = LazyCommands(self.commands, SUBJECTS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        try:
            return self.commands[cmd_name]
        except KeyError:
            return None
