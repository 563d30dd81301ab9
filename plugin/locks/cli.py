"""``druidflow locks``: show every task lock (active, revoked, expired) as a table or as JSON."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

import sqlalchemy as sa

from druidflow.intervals import format_instant
from druidflow.locks.lock import TaskLock
from druidflow.metadata.engine import DEFAULT_URL
from druidflow.metadata.tables import task_locks

_COLUMNS = ("DATASOURCE", "INTERVAL", "TYPE", "PRIORITY", "STATE", "GROUP", "TASK", "VERSION", "LEASE_EXPIRES")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``locks`` subcommand; its handler is :func:`run` (set as ``func`` and ``handler``)."""
    parser = subparsers.add_parser(
        "locks",
        help="show task locks (active, revoked, lease-expired)",
        description="Show every task lock in the metadata DB, revoked and lease-expired ones included.",
    )
    parser.add_argument("--datasource", "-d", help="only this dataSource")
    parser.add_argument("--task", help="only this task id")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    parser.set_defaults(func=run, handler=run)


def run(args: argparse.Namespace) -> int:
    """List the locks; reads ``args.metadata_url`` (default ``$DRUIDFLOW_METADATA_URL`` or local SQLite)."""
    from druidflow.locks.lockbox import TaskLockbox

    url = getattr(args, "metadata_url", None) or os.environ.get("DRUIDFLOW_METADATA_URL") or DEFAULT_URL
    box = TaskLockbox(url)
    if not sa.inspect(box.engine).has_table(task_locks.name):
        sys.stderr.write(
            f"druidflow: error: no lock table {task_locks.name} in {box.engine.url.render_as_string(hide_password=True)}; "
            "create it with `druidflow migrate`\n"
        )
        return 1
    locks = box.locks(datasource=getattr(args, "datasource", None), task_id=getattr(args, "task", None))
    if getattr(args, "json", False):
        json.dump([lk.to_json() for lk in locks], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_table(locks))
    return 0


def format_table(locks: Sequence[TaskLock]) -> str:
    """A plain aligned table, one row per (lock, task); a line saying so when there is none."""
    if not locks:
        return "no task locks\n"
    rows = [
        (
            lk.datasource,
            str(lk.interval),
            lk.type.value,
            str(lk.priority),
            lk.state,
            lk.group_id,
            lk.task_id,
            lk.version,
            format_instant(lk.lease_expires_ms),
        )
        for lk in locks
    ]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(_COLUMNS)]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in [_COLUMNS, *rows]]
    return "\n".join(lines) + "\n"
