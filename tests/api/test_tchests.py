import pytest

from atoll import credentials
from atoll.api import tchests
from atoll.api.context import AtollContext
from atoll.backends import file_store_settings
from atoll.config import Config
from atoll.domain.records import TreasureChest
from atoll.errors import AlreadyExistsError, ConflictError, UsageError

SECRET = "s3cr3t-Value-42"


def test_secret_is_encrypted_at_rest_and_never_returned(ctx: AtollContext) -> None:
    chest = tchests.new_tchest(ctx, "db", SECRET, user="alice", desc="database")
    assert chest.secret == "" and chest.user == "alice"
    stored = ctx.chests.get(TreasureChest, "db")
    assert not ctx.metadata.exists(TreasureChest, "db")  # chests live in ATOLL_HOME, not the configured store
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


def test_chests_of_earlier_versions_are_read_from_the_configured_store_and_imported(ctx: AtollContext) -> None:
    ctx.metadata.create(TreasureChest(name="old-s3", user="AKIA", secret=credentials.encrypt(SECRET)))
    ctx.config = Config.model_validate({"metadata": {"url": "memory://"},
                                        "file_store": {"type": "s3", "url": "http://s3", "tchest": "old-s3"}})
    assert file_store_settings(ctx.config, ctx.metadata)[1]["password"] == SECRET  # the fallback
    tchests.new_tchest(ctx, "db", SECRET)
    moved = tchests.import_tchests(ctx)
    assert [c.name for c in moved] == ["old-s3"] and moved[0].secret == ""
    assert not ctx.metadata.exists(TreasureChest, "old-s3")
    assert tchests.open_tchest(ctx, "old-s3") == ("AKIA", SECRET)
    assert file_store_settings(ctx.config, ctx.metadata)[1]["password"] == SECRET  # now from the chest store
    assert tchests.import_tchests(ctx) == []


def test_the_chest_store_wins_over_the_configured_store(ctx: AtollContext) -> None:
    ctx.metadata.create(TreasureChest(name="s3", user="old", secret=credentials.encrypt("old")))
    tchests.new_tchest(ctx, "s3", SECRET, user="new")
    ctx.config = Config.model_validate({"metadata": {"url": "memory://"},
                                        "file_store": {"type": "s3", "url": "http://s3", "tchest": "s3"}})
    options = file_store_settings(ctx.config, ctx.metadata)[1]
    assert (options["user"], options["password"]) == ("new", SECRET)
    assert tchests.import_tchests(ctx) == []  # the older one is left where it is
    assert ctx.metadata.exists(TreasureChest, "s3")
