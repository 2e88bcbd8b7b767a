import pytest

from atoll._registry import Backend, Registry
from atoll.errors import ConfigError


def test_unknown_backend_lists_the_supported_ones() -> None:
    registry: Registry[object] = Registry("thing", {"b": Backend("json:JSONDecoder"), "a": Backend("json:JSONEncoder")})
    with pytest.raises(ConfigError) as info:
        registry.load("zzz")
    assert "supported: a, b" in str(info.value)


def test_missing_dependency_gives_the_install_hint() -> None:
    registry: Registry[object] = Registry("thing", {"x": Backend("no_such_module_atoll:X", "pip install 'atoll[x]'")})
    with pytest.raises(ConfigError) as info:
        registry.load("x")
    assert "pip install 'atoll[x]'" in str(info.value)


def test_known_backend_is_imported_lazily() -> None:
    import json

    registry: Registry[object] = Registry("thing", {"json": Backend("json:JSONDecoder")})
    assert registry.load("json") is json.JSONDecoder
