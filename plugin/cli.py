"""The ``druidflow`` command line: run task specs in-process and look at what they produced.

    druidflow run SPEC.json [--confirm]         run a Druid task spec; print its report as JSON (kill: dry run
                                                unless --confirm)
    druidflow datasources [--json]              the dataSources and their segment counts
    druidflow segments DATASOURCE [--interval I] [--all] [--json]
    druidflow read DATASOURCE [--interval I] [--format csv|json]
    druidflow tasks [--datasource D] [--json]
    druidflow locks [--datasource D] [--json]
    druidflow timeline DATASOURCE [--interval I]
    druidflow kill DATASOURCE INTERVAL [--confirm]    (and mark-unused, mark-used, rules, apply-rules, orphans)
    druidflow supervise SPEC.json [--until-caught-up]   run a Kafka supervisor (and supervisor status|suspend|resume|reset)
    druidflow query "SELECT ... FROM DATASOURCE"  SQL over the visible segments (DuckDB)
    druidflow migrate                           create or upgrade Druidflow's tables in the metadata DB
    druidflow demo                              ingest the bundled sample and print its timeline
    druidflow realtime SPEC | push-status | push-server DIR    stream push (druidflow.push.cli)

Global options ``--metadata-url`` (or ``DRUIDFLOW_METADATA_URL``) and ``--deep-storage`` (or
``DRUIDFLOW_DEEP_STORAGE``) default to ``./var/druidflow``; they may come before or after the command. Exit 0 on
success; otherwise one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from druidflow import settings
from druidflow.cli_diagnostics import datasource_summary, require_datasource
from druidflow.exceptions import DruidflowError, MetadataConfigError, MetadataUnavailableError
from druidflow.intervals import Interval, format_instant
from druidflow.process_tuning import owned_process

if TYPE_CHECKING:
    from druidflow.tasks.runtime import Runtime

DEMO_SPEC = Path("examples") / "wikipedia-index.json"


def _runtime(args: argparse.Namespace) -> Runtime:
    from druidflow.tasks.runtime import Runtime

    return Runtime.from_urls(args.metadata_url, getattr(args, "deep_storage", None))


def _existing(args: argparse.Namespace) -> Runtime:
    """The runtime, after checking the interval and that ``args.datasource`` exists."""
    _interval(getattr(args, "interval", None))
    rt = _runtime(args)
    require_datasource(rt.store, args.datasource)
    return rt


def _interval(text: Optional[str]) -> Optional[Interval]:
    return Interval.parse(text, "--interval") if text else None


def cmd_run(args: argparse.Namespace) -> int:
    from druidflow.tasks.dispatch import run_task

    try:
        spec_text = sys.stdin.read() if args.spec == "-" else Path(args.spec).read_text()
    except UnicodeDecodeError as exc:
        raise DruidflowError(f"{args.spec}: not UTF-8 text: {exc}") from None
    try:
        spec = json.loads(spec_text)
    except json.JSONDecodeError as exc:
        raise DruidflowError(f"{args.spec}: not valid JSON: {exc}") from None
    except RecursionError:
        from druidflow.specs.limits import MAX_SPEC_DEPTH

        raise DruidflowError(f"{args.spec}: the spec nests deeper than {MAX_SPEC_DEPTH} levels") from None
    rt = _runtime(args)
    if isinstance(spec, dict) and spec.get("type") == "kill":
        return _run_kill(spec, rt, args)
    report = run_task(spec, rt)
    print(json.dumps(report, indent=2, default=str))
    return 0


def _run_kill(spec: dict[str, Any], rt: Any, args: argparse.Namespace) -> int:
    """A kill spec deletes only with ``--confirm``, as everywhere else a person starts a kill."""
    from druidflow.tasks import kill

    require_datasource(rt.store, spec.get("dataSource") if isinstance(spec.get("dataSource"), str) else None)
    report = kill.run(spec, rt, dry_run=not args.confirm)
    if report.dry_run:
        print("DRY RUN: nothing was deleted; re-run with --confirm to delete. " + report.summary(), file=sys.stderr)
    print(json.dumps(report.model_dump(), indent=2, default=str))
    return 0


def _segment_rows(args: argparse.Namespace) -> list[Any]:
    rt = _existing(args)
    return rt.store.segments(args.datasource, _interval(args.interval), include_unused=args.all)


def cmd_segments(args: argparse.Namespace) -> int:
    records = _segment_rows(args)
    if args.json:
        out = []
        for r in records:
            payload = r.segment.payload()
            payload["id"] = r.segment.id
            payload["used"] = r.used
            out.append(payload)
        print(json.dumps(out, indent=2))
        return 0
    rows = [
        [r.segment.id, str(r.segment.interval), r.segment.version, r.segment.partition_num, r.segment.num_rows, r.segment.size,
         "yes" if r.used else f"no ({r.unused_reason or '-'})"]
        for r in records
    ]
    _table(["id", "interval", "version", "partition", "rows", "bytes", "used"], rows)
    return 0


def cmd_timeline(args: argparse.Namespace) -> int:
    rt = _existing(args)
    interval = _interval(args.interval)
    # From the narrow columns aggregated per partition set: no payload is read.
    rows = [
        [str(e.interval), e.version, e.segments, e.rows, e.size]
        for e in rt.store.visible_summary(args.datasource, interval)
    ]
    print(f"visible timeline of {args.datasource}:")
    _table(["interval", "version", "segments", "rows", "bytes"], rows)
    return 0


def cmd_read(args: argparse.Namespace) -> int:
    from druidflow.query import visible_rows

    rt = _existing(args)
    out = sys.stdout
    writer = None
    rounded = _rounded_metrics(rt, args.datasource) if args.estimate else set()
    for batch in visible_rows(rt.store, rt.storage, args.datasource, _interval(args.interval)):
        rows = batch.to_pylist()
        for row in rows:
            t = row.get("__time")
            row["__time"] = format_instant(int(t.timestamp() * 1000)) if t is not None else None
            for k, v in row.items():
                if isinstance(v, bytes):  # a sketch metric: base64 as Druid prints complex columns, or its estimate
                    row[k] = _estimated(v, k in rounded) if args.estimate else base64.b64encode(v).decode()
            if args.format == "json":
                out.write(json.dumps(row, default=str) + "\n")
            else:
                if writer is None:
                    writer = csv.DictWriter(out, fieldnames=list(row), extrasaction="ignore")
                    writer.writeheader()
                writer.writerow({k: ("|".join(v) if isinstance(v, list) else v) for k, v in row.items()})
    return 0


def _rounded_metrics(rt: Any, data_source: str) -> set[str]:
    """The sketch metrics whose aggregator says ``round`` (hyperUnique, cardinality, HLL sketches)."""
    out = set()
    for segment in rt.store.used_segments(data_source):
        for agg in segment.aggregators or ():
            inner = agg.get("aggregator", agg) if agg.get("type") == "filtered" else agg
            if inner.get("round"):
                out.add(str(agg.get("name", inner.get("name"))))
    return out


def _estimated(blob: bytes, rounded: bool) -> Any:
    from druidflow.sketches import estimate

    value = estimate(blob)
    return round(value) if rounded and value is not None else value


def cmd_tasks(args: argparse.Namespace) -> int:
    rt = _runtime(args)
    tasks = rt.store.list_tasks(datasource=args.datasource)
    if args.json:
        print(json.dumps([_task_json(t) for t in tasks], indent=2, default=str))
        return 0
    rows = [[t.id, t.type, t.data_source, t.status, t.created_date, (t.error_msg or "")[:60]] for t in tasks]
    _table(["id", "type", "dataSource", "status", "created", "error"], rows)
    return 0


def _task_json(t: Any) -> dict[str, Any]:
    return {
        "id": t.id,
        "type": t.type,
        "dataSource": t.data_source,
        "groupId": t.group_id,
        "status": t.status,
        "createdTime": t.created_date,
        "updatedTime": t.updated_date,
        "errorMsg": t.error_msg,
        "report": t.report,
    }


def cmd_datasources(args: argparse.Namespace) -> int:
    summary = datasource_summary(_runtime(args).store)
    if args.json:
        print(json.dumps([{"dataSource": d, "usedSegments": u, "unusedSegments": n} for d, u, n in summary], indent=2))
        return 0
    _table(["dataSource", "used segments", "unused segments"], [list(row) for row in summary])
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from druidflow.metadata import migrate

    rt = _runtime(args)  # creates or upgrades the tables
    print(f"Druidflow's tables in {rt.store.engine.url.render_as_string(hide_password=True)} are at revision "
          f"{migrate.current_revision(rt.store.engine)}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    if not DEMO_SPEC.exists():
        raise DruidflowError(f"{DEMO_SPEC} not found: run 'druidflow demo' from the repository root")
    from druidflow.tasks.dispatch import run_task

    spec = json.loads(DEMO_SPEC.read_text())
    rt = _runtime(args)
    report = run_task(spec, rt)
    payload = report["reports"]["ingestionStatsAndErrors"]["payload"]
    print(f"ingested {DEMO_SPEC} as task {report['taskId']}")
    print("rowStats.buildSegments:", json.dumps(payload["rowStats"]["buildSegments"]))
    print(f"published {payload['segmentsPublished']} segments")
    print()
    args.datasource, args.interval = spec["spec"]["dataSchema"]["dataSource"], None
    return cmd_timeline(args)


def _table(header: list[str], rows: list[list[Any]]) -> None:
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for i, r in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    if not rows:
        print("(none)")


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless the help text already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not action.option_strings or "default" in text or action.default is argparse.SUPPRESS:
            return text
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreConstAction)) and action.default is False:
            return f"{text} (default: off)".strip()
        if action.default is None:
            return f"{text} (default: not set)".strip()
        return f"{text} (default: %(default)s)".strip()


_GLOBAL_HELP = {
    "--metadata-url": "SQLAlchemy URL of the metadata DB (default: $DRUIDFLOW_METADATA_URL, else SQLite in "
    "./var/druidflow/metadata.db)",
    "--deep-storage": "a path or s3://bucket/prefix (default: $DRUIDFLOW_DEEP_STORAGE, else ./var/druidflow/deep-storage)",
}


def _add_global_options(parser: argparse.ArgumentParser, default: Any) -> None:
    for flag, text in _GLOBAL_HELP.items():
        if flag not in parser._option_string_actions:
            parser.add_argument(flag, default=default, help=text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="druidflow", description="Druid's indexing-service tasks, in Python.", formatter_class=DefaultsHelpFormatter
    )
    _add_global_options(parser, None)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run a Druid task spec (JSON file, or - for stdin) and print its report")
    p.add_argument("spec", help="the task JSON file, or - for stdin")
    p.add_argument("--confirm", action="store_true", help="let a kill spec really delete (without it: a dry run)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("datasources", help="list the dataSources with their used and unused segment counts")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_datasources)

    p = sub.add_parser("segments", help="list segments")
    p.add_argument("datasource")
    p.add_argument("--interval", help="only segments overlapping this ISO interval")
    p.add_argument("--all", action="store_true", help="include unused segments")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_segments)

    p = sub.add_parser("timeline", help="the visible timeline of a dataSource")
    p.add_argument("datasource")
    p.add_argument("--interval", help="only this ISO interval")
    p.set_defaults(func=cmd_timeline)

    p = sub.add_parser("read", help="print the visible rows")
    p.add_argument("datasource")
    p.add_argument("--interval", help="only rows in this ISO interval")
    p.add_argument("--format", choices=["csv", "json"], default="csv", help="output format")
    p.add_argument("--estimate", action="store_true",
                   help="print each sketch metric's estimate (distinct count; a quantiles sketch's count) instead of "
                   "its base64 bytes; round=true metrics rounded")
    p.set_defaults(func=cmd_read)

    p = sub.add_parser("tasks", help="list tasks with status and report")
    p.add_argument("--datasource", help="only tasks of this dataSource")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_tasks)

    p = sub.add_parser("migrate", help="create or upgrade Druidflow's tables in the metadata DB")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("demo", help="ingest the bundled sample data and print the timeline")
    p.set_defaults(func=cmd_demo)

    from druidflow.locks.cli import register as register_locks
    from druidflow.push.cli import register as register_push
    from druidflow.sql_cli import register as register_query
    from druidflow.streaming.kafka_cli import register as register_kafka
    from druidflow.tasks.kill_cli import register as register_kill

    register_locks(sub)
    register_kill(sub)
    register_kafka(sub)
    register_push(sub)
    register_query(sub)
    for command in sub.choices.values():
        command.formatter_class = DefaultsHelpFormatter
        for action in command._actions:
            if action.option_strings and action.help is None:
                action.help = " "  # argparse hides an option without help text, and with it its default
        # SUPPRESS: a global option given before the command is not reset when the command does not repeat it.
        _add_global_options(command, argparse.SUPPRESS)
    return parser


def _metadata_setting(args: argparse.Namespace) -> str:
    """Which setting the metadata URL came from, for error messages."""
    return getattr(args, "metadata_url_source", "--metadata-url")


def main(argv: Optional[list[str]] = None) -> int:
    import os

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.metadata_url is not None:
        args.metadata_url_source = "--metadata-url"
    elif os.environ.get("DRUIDFLOW_METADATA_URL"):
        args.metadata_url_source = "DRUIDFLOW_METADATA_URL"
    else:
        args.metadata_url_source = "the default metadata DB (set --metadata-url or DRUIDFLOW_METADATA_URL)"
    try:
        if args.metadata_url is None:
            args.metadata_url = settings.metadata_url()
        # The CLI owns its process: the engine may tune glibc's allocator for the run (see process_tuning).
        with owned_process():
            return int(args.func(args) or 0)
    except BrokenPipeError:
        # The reader went away (e.g. `druidflow read ... | head`): not an error.
        sys.stderr.close()
        return 0
    except (MetadataConfigError, MetadataUnavailableError) as exc:
        print(f"druidflow: error: {_metadata_setting(args)}: {exc}", file=sys.stderr)
        return 1
    except (DruidflowError, OSError) as exc:
        print(f"druidflow: error: {_joined(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        import sqlalchemy as sa

        if not isinstance(exc, sa.exc.SQLAlchemyError):
            raise
        print(f"druidflow: error: metadata DB ({_metadata_setting(args)}): {_one_line(exc)}", file=sys.stderr)
        return 1


def _joined(exc: BaseException) -> str:
    """The whole message on one line."""
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__


def _one_line(exc: BaseException) -> str:
    """The first line (SQLAlchemy appends the statement and a link on further lines)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
