"""One small registry of backends chosen by name or URL scheme.

Each plug point (metadata store, file store, container manager, router
discovery) keeps a sorted table ``name -> "module:Class"`` plus an install
hint, and imports a backend only when it is asked for, so a missing optional
dependency becomes one clear error naming the extra to install.
:func:`lazy_exports` does the same for a package's public names.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from atoll.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class Backend:
    """Where a backend lives and how to get its dependencies."""

    target: str  # "package.module:ClassName"
    hint: str = ""  # e.g. "pip install 'atoll[s3]'"


class Registry(Generic[T]):
    """Backends of one plug point, looked up by name."""

    def __init__(self, point: str, backends: dict[str, Backend]) -> None:
        self.point = point
        self._backends = dict(sorted(backends.items()))

    def names(self) -> list[str]:
        return list(self._backends)

    def register(self, name: str, backend: Backend) -> None:
        """Add a backend (for plug-ins and tests)."""
        self._backends[name] = backend
        self._backends = dict(sorted(self._backends.items()))

    def load(self, name: str) -> type[T]:
        """Import and return the class registered under ``name``.

        Raises:
            ConfigError: unknown name (the message lists the known ones) or a
                missing optional dependency (the message gives the install hint).
        """
        backend = self._backends.get(name)
        if backend is None:
            known = ", ".join(self._backends)
            raise ConfigError(f"unknown {self.point} {name!r}; supported: {known}")
        module_name, _, attr = backend.target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            hint = f" ({backend.hint})" if backend.hint else ""
            raise ConfigError(f"{self.point} {name!r} needs a missing dependency: {exc.name}{hint}") from exc
        cls: type[T] = getattr(module, attr)
        return cls


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A package's module ``__getattr__`` (PEP 562) importing a name's module on first use.

    ``exports`` maps a public name to the module defining it; use as
    ``__getattr__ = lazy_exports(__name__, {...})``, so importing the package costs nothing.
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)  # later reads skip this function
        return value

    return __getattr__
