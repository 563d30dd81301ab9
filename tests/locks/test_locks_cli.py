"""``druidflow locks``: the subcommand the main CLI registers."""

from __future__ import annotations

import argparse
import json

from druidflow.locks import TaskLockbox
from druidflow.locks.cli import register
from tests.locks.conftest import day


def parse(argv, metadata_url):
    parser = argparse.ArgumentParser(prog="druidflow")
    parser.add_argument("--metadata-url", default=metadata_url)
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_locks_table_and_json(sqlite_url, capsys):
    box = TaskLockbox(sqlite_url)
    box.create_tables()
    box.try_lock("low", "low", "wiki", day(1, 2), "EXCLUSIVE", priority=25)
    box.try_lock("high", "high", "wiki", day(1, 3), "EXCLUSIVE", priority=75)
    box.try_lock("k", "k", "koala", day(1, 2), "SHARED", priority=0)

    args = parse(["locks", "--datasource", "wiki"], sqlite_url)
    assert args.func(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["DATASOURCE", "INTERVAL", "TYPE", "PRIORITY", "STATE", "GROUP", "TASK", "VERSION", "LEASE_EXPIRES"]
    assert [line.split()[4] for line in lines[1:]] == ["revoked", "active"]
    assert all(line.startswith("wiki ") for line in lines[1:])

    args = parse(["locks", "--json"], sqlite_url)
    assert args.handler(args) == 0
    payload = json.loads(capsys.readouterr().out)
    assert [(p["dataSource"], p["taskId"], p["state"]) for p in payload] == [
        ("koala", "k", "active"), ("wiki", "low", "revoked"), ("wiki", "high", "active"),
    ]
    assert payload[0]["type"] == "SHARED" and payload[0]["interval"] == day(1, 2)


def test_locks_says_so_when_there_are_none_or_no_tables(sqlite_url, capsys, monkeypatch):
    args = parse(["locks"], sqlite_url)
    assert args.func(args) == 1
    assert "no lock table" in capsys.readouterr().err
    TaskLockbox(sqlite_url).create_tables()
    monkeypatch.setenv("DRUIDFLOW_METADATA_URL", sqlite_url)
    args = parse(["locks"], None)  # falls back to the environment
    assert args.func(args) == 0
    assert capsys.readouterr().out == "no task locks\n"
