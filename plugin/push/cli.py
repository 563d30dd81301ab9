"""Stream push on the command line.

    druidflow realtime SPEC.json [--poll S] [--until-empty] [--no-drain]   the realtime process of one dataSource
    druidflow push-status [--datasource D] [--json]                         pending events per dataSource
    druidflow push-server SPEC_DIR [--port N]                               the push endpoints on loopback, no auth

``realtime`` hands off each window once it closes, and everything spooled when it is stopped (SIGTERM/SIGINT)
unless ``--no-drain``. ``push-server`` serves the two push endpoints without authentication and so binds only
to a loopback address; in Airflow the same endpoints run on the API server behind its authentication.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from druidflow.exceptions import DruidflowError

if TYPE_CHECKING:
    from druidflow.push.spec import RealtimeTask
    from druidflow.tasks.runtime import Runtime


def _runtime(args: argparse.Namespace) -> Runtime:
    from druidflow.tasks.runtime import Runtime

    return Runtime.from_urls(args.metadata_url, args.deep_storage)


def _load_spec(path: str) -> RealtimeTask:
    from druidflow.push.spec import RealtimeTask

    try:
        data = json.loads(Path(path).read_text())
    except ValueError as exc:
        raise DruidflowError(f"{path}: not valid JSON: {exc}") from None
    return RealtimeTask.load(data)


def cmd_realtime(args: argparse.Namespace) -> int:
    import logging

    from druidflow.push.runner import RealtimeRunner

    task = _load_spec(args.spec)
    rt = _runtime(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        handed = RealtimeRunner(task, rt, poll_s=args.poll).run(stop, drain_on_stop=not args.no_drain, until_empty=args.until_empty)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(json.dumps({"dataSource": task.data_source, "handedOffEvents": handed}))
    return 0


def cmd_push_status(args: argparse.Namespace) -> int:
    from druidflow.cli import _table
    from druidflow.push import spool

    rt = _runtime(args)
    rows = [s.to_json() for s in spool.summary(rt.store.engine, args.datasource)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    keys = ["dataSource", "pendingEvents", "pendingBatches", "pendingBuckets", "oldestPendingBucket", "committedEvents", "lastHandoffTask"]
    _table(keys, [[r[k] if r[k] is not None else "-" for k in keys] for r in rows])
    return 0


def cmd_push_server(args: argparse.Namespace) -> int:
    import ipaddress

    try:
        if args.host != "localhost" and not ipaddress.ip_address(args.host).is_loopback:
            raise ValueError
    except ValueError:
        raise DruidflowError(f"--host {args.host}: push-server has no authentication and binds only to loopback addresses") from None
    try:
        import uvicorn

        from druidflow.push.http import standalone_app
    except ImportError as exc:
        raise DruidflowError(f"push-server needs FastAPI and uvicorn ({exc}): pip install 'druidflow[push]'") from None
    rt = _runtime(args)
    app = standalone_app(Path(args.spec_dir), rt.store.engine)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("realtime", help="run the realtime (handoff) process of a pushed dataSource in the foreground")
    p.add_argument("spec", help="the dataSource's realtime task spec (JSON)")
    p.add_argument("--poll", type=float, default=None, help="seconds between handoff checks (default: as the windows need)")
    p.add_argument("--until-empty", action="store_true", help="exit once the spool of the dataSource is empty")
    p.add_argument("--no-drain", action="store_true", help="on SIGTERM/SIGINT exit without handing off open windows")
    p.set_defaults(func=cmd_realtime)

    p = sub.add_parser("push-status", help="pending (spooled, not handed off) and committed pushed events per dataSource")
    p.add_argument("--datasource", help="only this dataSource")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_push_status)

    p = sub.add_parser("push-server", help="serve the push endpoints on loopback, without authentication")
    p.add_argument("spec_dir", help="a folder of realtime task specs (*.json), one per dataSource")
    p.add_argument("--host", default="127.0.0.1", help="a loopback address to bind")
    p.add_argument("--port", type=int, default=8200, help="the port to listen on")
    p.set_defaults(func=cmd_push_server)
