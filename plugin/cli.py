"""The ``druidflow`` command line: run task specs in-process and look at what they produced.

    druidflow run SPEC.json                     run a Druid task spec; print its report as JSON
    druidflow segments DATASOURCE [--interval I] [--all] [--json]
    druidflow read DATASOURCE [--interval I] [--format csv|json]
    druidflow tasks [--datasource D] [--json]
    druidflow locks [--datasource D] [--json]
    druidflow timeline DATASOURCE [--interval I]
    druidflow kill DATASOURCE INTERVAL [--confirm]    (and mark-unused, mark-used, rules, apply-rules, orphans)
    druidflow demo                              ingest the bundled sample and print its timeline
    druidflow realtime SPEC | push-status | push-server DIR    stream push (druidflow.push.cli)

Global options ``--metadata-url`` (or ``DRUIDFLOW_METADATA_URL``) and ``--deep-storage`` (or
``DRUIDFLOW_DEEP_STORAGE``) default to ``./var/druidflow``. Exit 0 on success; otherwise one line on stderr
and a non-zero exit.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any, Optional

from druidflow import settings
from druidflow.exceptions import DruidflowError
from druidflow.intervals import Interval, format_instant

DEMO_SPEC = Path("examples") / "wikipedia-index.json"


def _runtime(args: argparse.Namespace):
    from druidflow.tasks.runtime import Runtime

    return Runtime.from_urls(args.metadata_url, args.deep_storage)


def _interval(text: Optional[str]) -> Optional[Interval]:
    return Interval.parse(text, "--interval") if text else None


def cmd_run(args: argparse.Namespace) -> int:
    from druidflow.tasks.dispatch import run_task

    spec_text = sys.stdin.read() if args.spec == "-" else Path(args.spec).read_text()
    try:
        spec = json.loads(spec_text)
    except json.JSONDecodeError as exc:
        raise DruidflowError(f"{args.spec}: not valid JSON: {exc}") from None
    report = run_task(spec, _runtime(args))
    print(json.dumps(report, indent=2, default=str))
    return 0


def _segment_rows(args: argparse.Namespace) -> list[Any]:
    rt = _runtime(args)
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
        [r.segment.id, str(r.segment.interval), r.segment.version, r.segment.partition_num, r.segment.num_rows, r.segment.size, "yes" if r.used else f"no ({r.unused_reason or '-'})"]
        for r in records
    ]
    _table(["id", "interval", "version", "partition", "rows", "bytes", "used"], rows)
    return 0


def cmd_timeline(args: argparse.Namespace) -> int:
    from druidflow.segments.timeline import Timeline

    rt = _runtime(args)
    interval = _interval(args.interval)
    timeline = Timeline.from_segments(rt.store.used_segments(args.datasource, interval))
    rows = []
    for entry in timeline.visible(interval):
        rows.append([
            str(entry.interval),
            entry.version,
            len(entry.segments),
            sum(s.num_rows for s in entry.segments),
            sum(s.size for s in entry.segments),
        ])
    print(f"visible timeline of {args.datasource}:")
    _table(["interval", "version", "segments", "rows", "bytes"], rows)
    return 0


def cmd_read(args: argparse.Namespace) -> int:
    from druidflow.query import visible_rows

    rt = _runtime(args)
    out = sys.stdout
    writer = None
    for batch in visible_rows(rt.store, rt.storage, args.datasource, _interval(args.interval)):
        rows = batch.to_pylist()
        for row in rows:
            t = row.get("__time")
            row["__time"] = format_instant(int(t.timestamp() * 1000)) if t is not None else None
            if args.format == "json":
                out.write(json.dumps(row, default=str) + "\n")
            else:
                if writer is None:
                    writer = csv.DictWriter(out, fieldnames=list(row), extrasaction="ignore")
                    writer.writeheader()
                writer.writerow({k: ("|".join(v) if isinstance(v, list) else v) for k, v in row.items()})
    return 0


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="druidflow", description="Druid's indexing-service tasks, in Python.")
    parser.add_argument("--metadata-url", default=None, help="SQLAlchemy URL of the metadata DB (env DRUIDFLOW_METADATA_URL)")
    parser.add_argument("--deep-storage", default=None, help="a path or s3://bucket/prefix (env DRUIDFLOW_DEEP_STORAGE)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run a Druid task spec (JSON file, or - for stdin) and print its report")
    p.add_argument("spec")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("segments", help="list segments")
    p.add_argument("datasource")
    p.add_argument("--interval")
    p.add_argument("--all", action="store_true", help="include unused segments")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_segments)

    p = sub.add_parser("timeline", help="the visible timeline of a dataSource")
    p.add_argument("datasource")
    p.add_argument("--interval")
    p.set_defaults(func=cmd_timeline)

    p = sub.add_parser("read", help="print the visible rows")
    p.add_argument("datasource")
    p.add_argument("--interval")
    p.add_argument("--format", choices=["csv", "json"], default="csv")
    p.set_defaults(func=cmd_read)

    p = sub.add_parser("tasks", help="list tasks with status and report")
    p.add_argument("--datasource")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_tasks)

    p = sub.add_parser("demo", help="ingest the bundled sample data and print the timeline")
    p.set_defaults(func=cmd_demo)

    from druidflow.locks.cli import register as register_locks
    from druidflow.push.cli import register as register_push
    from druidflow.tasks.kill_cli import register as register_kill

    register_locks(sub)
    register_kill(sub)
    register_push(sub)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.metadata_url is None:
        args.metadata_url = settings.metadata_url()
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        # The reader went away (e.g. `druidflow read ... | head`): not an error.
        sys.stderr.close()
        return 0
    except (DruidflowError, OSError) as exc:
        print(f"druidflow: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
