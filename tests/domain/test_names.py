import pytest

from atoll.domain.names import is_valid_name, random_name, validate_name
from atoll.errors import InvalidNameError


@pytest.mark.parametrize("name", ["iris", "a", "iris-clf-2", "9lives", "a" * 63])
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", "Iris", "-iris", "iris-", "iris_clf", "a b", "a" * 64, "../x", "ä"])
def test_invalid_names_are_refused_with_the_rule(name: str) -> None:
    with pytest.raises(InvalidNameError) as info:
        validate_name(name, "model name")
    assert "invalid model name" in str(info.value)
    assert "lowercase" in str(info.value)
    assert info.value.exit_code == 2


def test_random_names_are_always_valid_and_vary() -> None:
    names = {random_name() for _ in range(300)}
    assert all(is_valid_name(n) for n in names)
    assert len(names) > 250
