"""``atoll.toolkit`` names what notebooks import, each loaded on first use."""

from __future__ import annotations

from atoll import toolkit


def test_all_is_the_sorted_list_of_lazy_exports_and_each_resolves() -> None:
    assert toolkit.__all__ == sorted(toolkit._EXPORTS)
    for name in toolkit.__all__:
        assert getattr(toolkit, name) is not None, name
