import pytest

from atoll.api import tchests
from atoll.api.context import AtollContext
from atoll.config import Config
from atoll.domain.records import TreasureChest
from atoll.errors import AlreadyExistsError, ConflictError, UsageError

SECRET = "s3cr3t-Value-42"


def test_secret_is_encrypted_at_rest_and_never_returned(ctx: AtollContext) -> None:
    chest = tchests.new_tchest(ctx, "db", SECRET, user="alice", desc="database")
    assert chest.secret == "" and chest.user == "alice"
    stored = ctx.metadata.get(TreasureChest, "db")
    assert stored.secret and SECRET not in stored.secret
    assert tchests.get_tchest(ctx, "db").secret == ""
    assert all(t.secret == "" for t in tchests.list_tchests(ctx))
    assert tchests.open_tchest(ctx, "db") == ("alice", SECRET)
    with pytest.raises(AlreadyExistsError):
        tchests.new_tchest(ctx, "db", SECRET)
    with pytest.raises(UsageError):
        tchests.new_tchest(ctx, "empty", "")
    with pytest.raises(UsageError, match="secret"):
        tchests.list_tchests(ctx, filter={"secret": {"$exists": True}})


def test_update_keeps_the_secret_unless_given(ctx: AtollContext) -> None:
    tchests.new_tchest(ctx, "db", SECRET, user="alice")
    tchests.update_tchest(ctx, "db", desc="new")
    assert tchests.open_tchest(ctx, "db") == ("alice", SECRET)
    tchests.update_tchest(ctx, "db", secret="other", user="bob")
    assert tchests.open_tchest(ctx, "db") == ("bob", "other")
    assert tchests.get_tchest(ctx, "db").desc == "new"


def test_rm_refuses_while_config_uses_it(ctx: AtollContext) -> None:
    tchests.new_tchest(ctx, "db", SECRET)
    ctx.config = Config.model_validate({"metadata": {"tchest": "db"}})
    with pytest.raises(ConflictError, match="metadata.tchest"):
        tchests.delete_tchest(ctx, "db")
    tchests.delete_tchest(ctx, "db", confirm=lambda q: True)
    assert tchests.list_tchests(ctx) == []
