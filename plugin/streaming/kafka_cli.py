"""``druidflow supervise SPEC.json`` and ``druidflow supervisor status|suspend|resume|reset|list``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from druidflow.exceptions import DruidflowError

if TYPE_CHECKING:
    from druidflow.tasks.runtime import Runtime


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "supervise",
        help="run a Kafka supervisor spec in the foreground",
        description="Run a Druid Kafka supervisor spec: plan tasks from the committed offsets, read, build, publish "
        "segments and offsets exactly once; repeat every ioConfig.period.",
    )
    p.add_argument("spec", help="the supervisor spec JSON file (- for stdin)")
    p.add_argument("--until-caught-up", action="store_true", help="exit once every partition's latest offset is published")
    p.add_argument("--max-cycles", type=int, default=None, help="stop after this many cycles (default: no limit)")
    p.add_argument("--inline", action="store_true", help="run tasks in this process instead of one child process each")
    p.set_defaults(func=cmd_supervise)

    s = subparsers.add_parser("supervisor", help="look at or change a Kafka supervisor")
    ops = s.add_subparsers(dest="op", required=True)
    for name, helptext in (("status", "per-partition offsets, lag and last publish"), ("suspend", "stop creating tasks"), ("resume", "create tasks again")):
        q = ops.add_parser(name, help=helptext)
        q.add_argument("id", help="the supervisor id (its dataSource)")
        q.set_defaults(func=cmd_supervisor)
    q = ops.add_parser("reset", help="forget or move the committed offsets (a dry run unless --confirm)")
    q.add_argument("id")
    q.add_argument("--to", choices=["earliest", "latest"], default=None, help="set the offsets to the broker's earliest or latest")
    q.add_argument("--confirm", action="store_true", help="really reset (otherwise only show what would change)")
    q.set_defaults(func=cmd_supervisor)
    q = ops.add_parser("list", help="the supervisor ids")
    q.set_defaults(func=cmd_supervisor)


def _runtime(args: argparse.Namespace) -> Runtime:
    from druidflow.tasks.runtime import Runtime

    return Runtime.from_urls(args.metadata_url, args.deep_storage)


def cmd_supervise(args: argparse.Namespace) -> int:
    from druidflow.streaming import supervisor

    text = sys.stdin.read() if args.spec == "-" else Path(args.spec).read_text()
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DruidflowError(f"{args.spec}: not valid JSON: {exc}") from None
    rt = _runtime(args)
    sup = supervisor.parse_supervisor_spec(spec)
    if args.inline:
        runner = supervisor.inline_runner(rt)
    else:
        timeout = (sup.io.ms("task_duration") + sup.io.ms("completion_timeout")) / 1000.0
        url = rt.store.engine.url.render_as_string(hide_password=False)
        runner = supervisor.process_runner(url, _deep_storage(args), timeout, work_dir=str(rt.work_dir))

    def report(cycle: Any) -> None:
        for r in cycle.reports:
            span = ", ".join(f"{p}:{r.start[p]}-{r.end[p]}" for p in sorted(r.start))
            line = f"{r.task_id} {r.status} messages={r.messages} segments={len(r.segments)} offsets[{span}]"
            print(line + (f" error={r.error}" if r.error else ""), flush=True)
        if cycle.suspended:
            print(f"supervisor {sup.id} is suspended", flush=True)

    cycles = supervisor.supervise(sup, rt, runner=runner, until_caught_up=args.until_caught_up, max_cycles=args.max_cycles, on_cycle=report)
    if args.until_caught_up and not (cycles and cycles[-1].caught_up):
        raise DruidflowError(f"supervisor {sup.id}: not caught up after {len(cycles)} cycles")
    return 0


def _deep_storage(args: argparse.Namespace) -> str:
    from druidflow import settings

    return args.deep_storage or settings.deep_storage()


def cmd_supervisor(args: argparse.Namespace) -> int:
    from druidflow.streaming import supervisor

    rt = _runtime(args)
    if args.op == "list":
        for sid in supervisor.list_ids(rt):
            print(sid)
        return 0
    if args.op == "status":
        print(json.dumps(supervisor.status(rt, args.id), indent=2))
        return 0
    if args.op in ("suspend", "resume"):
        supervisor.set_suspended(rt, args.id, args.op == "suspend")
        print(f"supervisor {args.id} {'suspended' if args.op == 'suspend' else 'resumed'}")
        return 0
    before, after = supervisor.reset_plan(rt, args.id, args.to)
    target = "forgotten (next tasks start at useEarliestOffset)" if after is None else json.dumps({str(k): v for k, v in sorted(after.items())})
    current = "none" if before is None else json.dumps({str(k): v for k, v in sorted(before.items())})
    if not args.confirm:
        print(f"dry run: supervisor {args.id} offsets {current} would be {target}; add --confirm to reset")
        return 0
    supervisor.reset(rt, args.id, args.to)
    print(f"supervisor {args.id}: offsets {current} are now {target}")
    return 0
