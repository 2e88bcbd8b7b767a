"""``atoll check`` and ``atoll key`` as a user runs them: output formats and exit codes."""

from __future__ import annotations

import sqlite3


def test_check_reports_with_exit_1_and_repairs_with_s(atoll, tmp_path) -> None:
    atoll.ok("model", "new", "--name", "m")
    assert "no problems found" in atoll.ok("check").out
    with sqlite3.connect(atoll.home / "atoll.db") as db:
        db.execute("UPDATE records SET doc = '{' WHERE kind = 'model'")
    res = atoll("-o", "json", "check", "--quick")
    assert res.code == 1 and res.err.strip().splitlines()[-1].startswith("error: 1 problem(s) found")
    assert [(f["problem"], f["what"], f["repaired"]) for f in res.json()] == [("damaged-record", "model 'm'", False)]
    refused = atoll("-o", "json", "check", "--repair")  # no terminal to ask, no -s: nothing is changed
    assert refused.code == 1 and refused.json()[0]["repaired"] is False
    repaired = atoll("-s", "-o", "json", "check", "--repair")
    assert repaired.code == 0, repaired.err
    assert repaired.json()[0]["repaired"] is True
    assert atoll.js("model", "list") == []


def test_key_commands(atoll) -> None:
    assert "not found" in atoll.fails(1, "key", "new", "--proj", "nope")
    atoll.ok("proj", "new", "--name", "p")
    made = atoll.js("key", "new", "--proj", "p", "--name", "k1", "--deploy", "svc")
    assert made["key"].startswith("atk_") and made["prefix"] == made["key"][:12]
    table = atoll.ok("key", "new", "--proj", "p", "--name", "k2").out
    assert "atk_" in table and "cannot show it again" in table
    listed = atoll.js("key", "list", "--proj", "p")
    assert [k["name"] for k in listed] == ["k1", "k2"]
    assert made["key"] not in str(listed) and all("hash" not in k for k in listed)
    assert "invalid" in atoll.fails(2, "key", "new", "--proj", "p", "--deploy", "Bad")
    assert "--expires" in atoll.fails(2, "key", "new", "--proj", "p", "--expires", "0")
    atoll.ok("key", "rm", "--proj", "p", "--name", "k1")
    assert [k["name"] for k in atoll.js("key", "list")] == ["k2"]
