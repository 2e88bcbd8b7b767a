import pytest
from pydantic import ValidationError

from atoll.domain.records import (
    BuildVersion,
    Dataset,
    FileSpec,
    Model,
    ModelVersion,
    Training,
    TreasureChest,
)
from atoll.errors import InvalidNameError


def test_scoped_records_key_by_their_model_or_project() -> None:
    ds = Dataset(name="full", model="iris")
    assert ds.key() == ("iris", "full")
    assert ds.ref == "iris:full"
    assert Model(name="iris").key() == ("", "iris")


def test_snapshots_survive_changes_to_the_source() -> None:
    bvers = BuildVersion(name="latest", proj="demo", code_hash="abc")
    training = Training(name="t1", proj="demo", notebook="train.ipynb", bvers=bvers)
    version = ModelVersion(name="v1", model="iris", train=training)
    bvers.code_hash = "changed"
    assert version.train is not None
    assert version.train.bvers.code_hash == "abc"


def test_secret_fields_are_not_in_the_public_dump() -> None:
    chest = TreasureChest(name="db", user="atoll", secret="gAAAA-token")
    dumped = chest.public_dump()
    assert dumped["user"] == "atoll"
    assert "secret" not in dumped
    assert "gAAAA-token" not in str(dumped)


def test_invalid_record_name_is_an_atoll_error() -> None:
    with pytest.raises((InvalidNameError, ValidationError)) as info:
        Model(name="Bad Name")
    assert "invalid model name" in str(info.value)


def test_file_spec_refuses_paths_and_non_positive_limits() -> None:
    with pytest.raises(ValidationError):
        FileSpec(name="../clf.pkl")
    with pytest.raises(ValidationError):
        FileSpec(name="clf.pkl", max_mb=0)
    with pytest.raises(ValidationError):
        FileSpec(name="clf.pkl", unknown=1)  # type: ignore[call-arg]
