"""``druidflow kill``, ``mark-unused``, ``mark-used``, ``rules``, ``apply-rules`` and ``orphans``: deleting data
from the command line, safe by default.

    druidflow kill wiki 2024-01-01/2024-02-01            dry run: lists what would be deleted, deletes nothing
    druidflow kill wiki 2024-01-01/2024-02-01 --confirm  deletes it
    druidflow kill --spec kill.json [--confirm]          a whole Druid kill spec (still a dry run without --confirm)
    druidflow mark-unused wiki --interval 2024-01-01/2024-02-01 [--reason R]
    druidflow mark-used wiki --segment ID [--segment ID ...]
    druidflow rules wiki [--set '[{"type": "dropBeforeByPeriod", "period": "P90D"}]']
    druidflow apply-rules [wiki ...] [--dry-run]
    druidflow orphans [wiki] [--delete]

``druidflow run kill.json`` is a dry run too, unless ``--confirm``. A dataSource that has no segment at all is
reported as not existing; a mark-used/mark-unused that changes nothing says why.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from druidflow.cli_diagnostics import datasource_exists, has_rules, require_datasource, why_nothing_marked
from druidflow.exceptions import SpecError
from druidflow.intervals import Interval

if TYPE_CHECKING:
    from druidflow.tasks.runtime import Runtime


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the deletion subcommands to the ``druidflow`` parser."""
    p = subparsers.add_parser(
        "kill",
        help="delete unused segments of an interval (a dry run unless --confirm)",
        description="Delete the unused segments lying entirely inside INTERVAL: their files, then their rows. "
        "Without --confirm nothing is deleted: the command lists exactly the segments and files a real run would "
        "delete, and what it would skip and why.",
    )
    p.add_argument("datasource", nargs="?", help="the dataSource (or give --spec)")
    p.add_argument("interval", nargs="?", help="ISO interval, e.g. 2024-01-01/2024-02-01")
    p.add_argument("--spec", help="a Druid kill task JSON file (- for stdin) instead of the fields")
    p.add_argument("--version", action="append", dest="versions", help="only this version (repeatable)")
    p.add_argument("--batch-size", type=int, help="segments per batch (default 100)")
    p.add_argument("--limit", type=int, help="delete at most this many segments")
    p.add_argument("--max-used-status-last-updated-time", help="only segments marked unused at or before this instant")
    p.add_argument("--buffer-period", help="only segments marked unused at least this long ago (ISO period, e.g. P30D)")
    p.add_argument("--mark-as-unused", action="store_true", help="first mark the used segments inside INTERVAL unused")
    p.add_argument("--skip-locked-intervals", action="store_true", help="lock only what is deleted; skip parts other tasks hold")
    p.add_argument("--priority", type=int, help="lock priority (default 0)")
    p.add_argument("--lock-timeout", type=float, default=0.0, help="seconds to wait for the lock (default: try once)")
    p.add_argument("--id", help="task id (default: generated)")
    p.add_argument("--confirm", action="store_true", help="really delete (without it: a dry run)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_kill)

    for name, verb in (("mark-unused", "unused"), ("mark-used", "used again")):
        p = subparsers.add_parser(name, help=f"mark segments {verb} (by interval, ids, or the whole dataSource)")
        p.add_argument("datasource")
        which = p.add_mutually_exclusive_group(required=True)
        which.add_argument("--interval", help="segments lying entirely inside this ISO interval")
        which.add_argument("--segment", action="append", dest="segments", help="a segment id (repeatable)")
        which.add_argument("--all", action="store_true", help="every segment of the dataSource")
        if name == "mark-unused":
            p.add_argument("--reason", default="dropped-by-user", help="why (stored with the segment; default dropped-by-user)")
            p.set_defaults(func=cmd_mark_unused)
        else:
            p.set_defaults(func=cmd_mark_used)

    p = subparsers.add_parser("rules", help="show or set a dataSource's retention rules")
    p.add_argument("datasource", help="the dataSource, or _default for the rules every dataSource falls back to")
    p.add_argument("--set", dest="rules", help="the new rules: a JSON list, or @FILE")
    p.set_defaults(func=cmd_rules)

    p = subparsers.add_parser("apply-rules", help="mark unused the used segments a drop rule matches (files stay)")
    p.add_argument("datasources", nargs="*", help="dataSources (default: every one with rules)")
    p.add_argument("--dry-run", action="store_true", help="only report what would be marked unused")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_apply_rules)

    p = subparsers.add_parser("orphans", help="list (or delete) deep-storage files no segment row points at")
    p.add_argument("datasource", nargs="?", help="only files under this dataSource")
    p.add_argument("--delete", action="store_true", help="delete the orphans (never locked or unrecognised files)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_orphans)


def _runtime(args: argparse.Namespace) -> Runtime:
    from druidflow.tasks.runtime import Runtime

    return Runtime.from_urls(args.metadata_url, getattr(args, "deep_storage", None))


def kill_spec_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The kill task JSON the command line describes (``--spec`` plus any fields given on top of it)."""
    if args.spec:
        text = sys.stdin.read() if args.spec == "-" else Path(args.spec).read_text()
        try:
            spec = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError("--spec", args.spec, f"not valid JSON: {exc}") from None
        if not isinstance(spec, dict):
            raise SpecError("--spec", args.spec, "a kill task is a JSON object")
    else:
        if not args.datasource or not args.interval:
            raise SpecError("datasource/interval", [args.datasource, args.interval], "give DATASOURCE and INTERVAL, or --spec")
        spec = {"type": "kill"}
    fields = {
        "dataSource": args.datasource,
        "interval": args.interval,
        "versions": args.versions,
        "batchSize": args.batch_size,
        "limit": args.limit,
        "maxUsedStatusLastUpdatedTime": args.max_used_status_last_updated_time,
        "id": args.id,
    }
    spec.update({k: v for k, v in fields.items() if v is not None})
    if args.mark_as_unused:
        spec["markAsUnused"] = True
    context = dict(spec.get("context") or {})
    if args.priority is not None:
        context["priority"] = args.priority
    if args.skip_locked_intervals:
        context["skipLockedIntervals"] = True
    if context:
        spec["context"] = context
    return spec


def cmd_kill(args: argparse.Namespace) -> int:
    from druidflow.tasks import kill

    spec = kill_spec_from_args(args)
    rt = _runtime(args)
    require_datasource(rt.store, spec.get("dataSource") if isinstance(spec.get("dataSource"), str) else None)
    report = kill.run(
        spec,
        rt,
        dry_run=not args.confirm,
        buffer_period=args.buffer_period,
        lock_timeout_s=args.lock_timeout,
    )
    if args.json:
        print(json.dumps(report.model_dump(), indent=2))
        return 0
    sys.stdout.write(format_kill_report(report))
    return 0


def format_kill_report(report: Any) -> str:
    """The kill report as text: what was (or would be) deleted, then what was skipped and why."""
    lines: list[str] = []
    if report.dry_run:
        lines.append("DRY RUN: nothing was deleted. Re-run with --confirm to delete what is listed below.")
        if report.blocked_by:
            lines.append(f"note: the interval is locked now by {', '.join(report.blocked_by)}; a real run would have to wait")
    verb = "would delete" if report.dry_run else "deleted"
    lines.append(
        f"{verb} {report.num_segments_killed} segment(s) ({report.bytes_killed} bytes) and {report.num_files_deleted} "
        f"file(s) of {report.data_source} in {report.num_batches_processed} batch(es)"
    )
    if report.segments:
        lines.append("segments:")
        lines += [f"  {s}" for s in report.segments]
    if report.files:
        lines.append("files:")
        lines += [f"  {f}" for f in report.files]
    if report.listing_truncated:
        lines.append(f"  ... (lists cut at {len(report.segments)}; use --json for the counts)")
    if report.resumed:
        resumed = ", ".join(f"{k} ({v})" for k, v in report.resumed.items())
        lines.append(f"finished segments left claimed by earlier kills: {resumed}")
    if report.skipped:
        lines.append("skipped:")
        for reason, entry in sorted(report.skipped.items()):
            what = f"{entry.segments} segment(s)" if entry.segments else f"{entry.files} file(s)"
            lines.append(f"  {reason}: {what} - {entry.why}")
            lines += [f"      e.g. {e}" for e in entry.examples[:3]]
    return "\n".join(lines) + "\n"


def _selection(args: argparse.Namespace) -> dict[str, Any]:
    if args.interval:
        return {"interval": Interval.parse(args.interval, "--interval")}
    if args.segments:
        return {"segment_ids": args.segments}
    return {}


def cmd_mark_unused(args: argparse.Namespace) -> int:
    return _mark(args, to_used=False)


def cmd_mark_used(args: argparse.Namespace) -> int:
    return _mark(args, to_used=True)


def _mark(args: argparse.Namespace, *, to_used: bool) -> int:
    selection = _selection(args)
    store = _runtime(args).store
    require_datasource(store, args.datasource)
    if to_used:
        count = store.mark_used(args.datasource, **selection)
        done = f"marked {count} segment(s) of {args.datasource} used again"
    else:
        count = store.mark_unused(args.datasource, reason=args.reason, **selection)
        done = f"marked {count} segment(s) of {args.datasource} unused ({args.reason}); their files stay until a kill"
    if count == 0:
        why = why_nothing_marked(
            store,
            args.datasource,
            to_used=to_used,
            interval=selection.get("interval"),
            segment_ids=selection.get("segment_ids"),
        )
        done = f"marked 0 segment(s) of {args.datasource} {'used' if to_used else 'unused'}: {why}"
    print(done)
    return 0


def cmd_rules(args: argparse.Namespace) -> int:
    from druidflow import retention

    store = _runtime(args).store
    if args.rules is not None:
        text = Path(args.rules[1:]).read_text() if args.rules.startswith("@") else args.rules
        retention.set_rules(store, args.datasource, text)
        if args.datasource != "_default" and not datasource_exists(store, args.datasource):
            print(f"note: dataSource {args.datasource!r} has no segments yet; its rules apply once it has", file=sys.stderr)
    elif args.datasource != "_default" and not has_rules(store, args.datasource):
        # Rules may be set before a dataSource exists; showing them for a name that has nothing is a typo.
        require_datasource(store, args.datasource)
    print(json.dumps(store.get_rules(args.datasource), indent=2))
    return 0


def cmd_apply_rules(args: argparse.Namespace) -> int:
    from druidflow import retention

    results = retention.apply_all_rules(_runtime(args).store, args.datasources or None, dry_run=args.dry_run)
    if args.json:
        print(json.dumps([r.model_dump() for r in results], indent=2))
        return 0
    verb = "would mark" if args.dry_run else "marked"
    for r in results:
        print(f"{r.data_source}: {verb} {r.marked_unused} of {r.used_segments} used segment(s) unused")
        for outcome in r.rules:
            print(f"  {outcome.segments:>8}  {json.dumps(outcome.rule)}{'  (drop)' if outcome.drops else ''}")
        if r.unmatched:
            print(f"  {r.unmatched:>8}  (no rule: kept)")
    if not results:
        print("no dataSource has retention rules")
    return 0


def cmd_orphans(args: argparse.Namespace) -> int:
    from druidflow.tasks.orphans import sweep_orphans

    report = sweep_orphans(_runtime(args), args.datasource, delete=args.delete)
    if args.json:
        print(json.dumps(report.model_dump(), indent=2))
        return 0
    for o in report.orphans:
        note = f" (locked by {', '.join(o.locked_by)})" if o.locked_by else ""
        print(f"{o.state:<12}  {o.size:>12}  {o.path}{note}")
    orphans = sum(1 for o in report.orphans if o.state == "orphan")
    if args.delete:
        print(f"deleted {report.deleted} orphan file(s), {report.bytes_deleted} bytes, of {report.files_scanned} scanned")
    else:
        print(f"{orphans} orphan file(s) of {report.files_scanned} scanned; --delete removes them")
    return 0
