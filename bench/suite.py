"""Every figure of issue 20 in one session, each printed with its ratio against its target.

``python -m bench.run --all`` (full size) or ``python -m bench.run --quick`` (CI-sized smoke check) runs, in this
order, so that the ratios compare engines measured in the same session:

* **build vs peers**: Druidflow's index build over the fastest of polars and DuckDB (target <= 1.0), on the
  high-cardinality reference job (``bench.reference_spec``) and the heavy-rollup job (``bench.heavy_rollup``,
  normal and extreme), each on CSV and JSON lines, rounds interleaved, outputs checked for agreement;
* **fixed overhead** of ``druidflow run`` (``bench.overhead``, target <= 0.3 s);
* **hashed vs dynamic**: the reference job with ``numShards`` 3 over the same job with dynamic partitioning
  (``bench.hashed.run_num_shards``, target <= 1.2);
* **memory**: Druidflow's peak RSS on the large size over the small one with maxRowsInMemory 1M (target <= 1.1);
  if the disk cannot hold the 50M-row file, 20M is used instead and the summary says so;
* **metadata**: ``run(url) -> dict`` of ``bench.metadata``, ``bench.planner`` and ``bench.locks`` on SQLite and
  PostgreSQL, printed as they return; under ``--quick`` only modules whose ``run`` takes ``quick`` are called.

The summary table lists every figure, its target, the ratio and whether it was met; the whole payload is saved to
``bench/results/<time>-issue20[-quick].json``. Exit 1 when an engine failed or outputs disagreed (a missed
target is reported, not an error: the machine may be busy).
"""

from __future__ import annotations

import argparse
import inspect
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import heavy_rollup, overhead
from bench import run as harness
from bench.generate import parse_rows, rows_label

PEERS = ("polars", "duckdb")
HASHED_ENTRY = "bench.hashed.run_num_shards"
DYNAMIC_ENTRY = "druidflow.tasks.index.run_local"
TARGETS = {"build": 1.0, "overhead_s": overhead.TARGET_S, "hashed": 1.2, "memory": 1.1}
SUITE_METADATA_MODULES = ("bench.metadata", "bench.planner", "bench.locks")
GIB = 2**30


class Sizes:
    """Row counts and repeats of one suite run."""

    def __init__(self, quick: bool, args: argparse.Namespace) -> None:
        self.quick = quick
        self.reference = parse_rows(args.rows) if not quick else 20_000
        self.heavy = 3_000_000 if not quick else 20_000
        self.extreme = 5_000_000 if not quick else 30_000
        self.hashed = self.reference
        self.memory = [5_000_000, 50_000_000] if not quick else [20_000, 200_000]
        self.memory_limit = 1_000_000 if not quick else 5_000
        self.repeat = args.repeat
        self.overhead_repeat = 5 if not quick else 2


def _figure(
    name: str, value: float | None, target: float, unit: str = "x", note: str = "", at_least: bool = False
) -> dict[str, Any]:
    """A figure against its target: met when ``value <= target`` (a time, a ratio), or ``>=`` with ``at_least``
    (a throughput); ``ratio_to_target`` is value / target either way."""
    met = None if value is None else (value >= target if at_least else value <= target)
    ratio = None if value is None or not target else round(value / target, 2)
    return {"figure": name, "value": value, "target": target, "unit": unit, "met": met, "note": note,
            "at_least": at_least, "ratio_to_target": ratio}  # fmt: skip


def _bound(fig: dict[str, Any]) -> str:
    return f"{'>=' if fig.get('at_least') else '<='} {fig['target']:g}{fig['unit']}"


def _print_ratio(fig: dict[str, Any]) -> None:
    value = "n/a" if fig["value"] is None else f"{fig['value']:.2f}{fig['unit']}"
    verdict = {True: "met", False: "missed", None: "not measured"}[fig["met"]]
    note = f"  ({fig['note']})" if fig["note"] else ""
    ratio = "" if fig.get("ratio_to_target") is None else f", ratio to target {fig['ratio_to_target']:.2f}"
    print(f"  => {fig['figure']}: {value} (target {_bound(fig)}{ratio}): {verdict}{note}", flush=True)


# --------------------------------------------------------------------------------------------------- builds


def reference_builds(sizes: Sizes, args: argparse.Namespace, work_dir: Path, problems: list[str]) -> list[dict]:
    """The high-cardinality reference job on CSV and JSON: Druidflow over the fastest peer."""
    figures = []
    for fmt in ("csv", "json"):
        args.format = fmt
        path = harness.prepare_input(sizes.reference, args)
        print(f"\n[build] high-cardinality job, {sizes.reference:,} rows of {fmt} ({path.name}), {args.repeat} rounds")
        records = harness.run_rounds(["druidflow", *PEERS], path, args, work_dir, 1_000_000)
        stats = harness.engine_stats(records, sizes.reference)
        ratio = harness.ratios(stats)
        found = harness.agreement(records, sizes.reference)
        problems += [f"reference {fmt}: {p}" for p in found]
        problems += [f"reference {fmt}: {e} failed" for e, s in stats.items() if s.get("status") != "ok"]
        medians = {e: s.get("median_wall_s") for e, s in stats.items()}
        fig = _figure(f"build / fastest peer, high-cardinality, {fmt}", ratio.get("druidflow_vs_fastest_peer"), TARGETS["build"],
                      note=_medians(medians) + ("" if not found else "; OUTPUTS DISAGREE"))  # fmt: skip
        fig["engines"] = stats
        _print_ratio(fig)
        figures.append(fig)
    return figures


def _medians(medians: dict[str, float | None]) -> str:
    return ", ".join(f"{e} {v:.2f} s" for e, v in medians.items() if v is not None)


def heavy_builds(sizes: Sizes, args: argparse.Namespace, problems: list[str]) -> list[dict]:
    """The heavy-rollup job (normal and extreme) on CSV and JSON: Druidflow over the fastest peer."""
    figures = []
    for extreme, rows in ((False, sizes.heavy), (True, sizes.extreme)):
        for fmt in ("csv", "json"):
            path = args.data / f"heavy_rollup{'_extreme' if extreme else ''}_{rows}.{fmt}"
            if not path.exists():
                print(f"generating {path} ...", flush=True)
                heavy_rollup.generate(path, rows, fmt, extreme)
            harness.warm_cache(path)
            shape = "extreme" if extreme else "normal"
            print(f"\n[build] heavy-rollup job ({shape}), {rows:,} rows of {fmt}, {sizes.repeat} rounds")
            runs: dict[str, list[dict]] = {e: [] for e in ("druidflow", *PEERS)}
            for round_index in range(sizes.repeat):
                for engine in runs:
                    result = heavy_rollup.run_child(engine, path, fmt)
                    runs[engine].append(result)
                    shown = f"{result['wall_s']:.2f} s" if result["status"] == "ok" else result.get("reason", "")
                    print(f"  round {round_index + 1}  {engine:<10} {result['status']:<8} {shown}", flush=True)
            medians: dict[str, float | None] = {}
            totals = {}
            for engine, results in runs.items():
                ok = [r for r in results if r["status"] == "ok"]
                medians[engine] = statistics.median(r["wall_s"] for r in ok) if ok else None
                if len(ok) < len(results):
                    problems.append(f"heavy {shape} {fmt}: {engine} failed")
                if ok:
                    last = ok[-1]
                    totals[engine] = (last["rows_out"], last["count"], last["units"], last["amount"])
            if len(set(totals.values())) > 1:
                problems.append(f"heavy {shape} {fmt}: totals disagree {totals}")
            if totals.get("druidflow", (None, 0))[1] != rows:
                problems.append(f"heavy {shape} {fmt}: druidflow's count is not the {rows:,} input rows")
            peers = [median for p in PEERS if (median := medians.get(p))]
            ours = medians.get("druidflow")
            value = ours / min(peers) if ours and peers else None
            note = _medians(medians) + (f"; {rows // max(totals.get('druidflow', (1,))[0], 1):,} input rows per output row" if totals else "")
            fig = _figure(f"build / fastest peer, heavy rollup {shape}, {fmt}", value, TARGETS["build"], note=note)
            _print_ratio(fig)
            figures.append(fig)
    return figures


# --------------------------------------------------------------------------------------------------- the rest


def overhead_figure(sizes: Sizes) -> dict:
    print(f"\n[overhead] druidflow run of a {overhead.ROWS}-row spec, {sizes.overhead_repeat} fresh processes")
    result = overhead.run(sizes.overhead_repeat)
    note = (f"wall {result['median_wall_s']:.3f} s - build {result['median_build_s']:.3f} s; heavy imports: "
            f"{', '.join(result['heavy_imports']) or 'none'}")  # fmt: skip
    fig = _figure("druidflow run fixed overhead", result["fixed_overhead_s"], TARGETS["overhead_s"], unit="s", note=note)
    fig["detail"] = result
    _print_ratio(fig)
    return fig


def hashed_figure(sizes: Sizes, args: argparse.Namespace, work_dir: Path, problems: list[str]) -> dict:
    args.format = "csv"
    path = harness.prepare_input(sizes.hashed, args)
    print(f"\n[hashed] numShards 3 vs dynamic, {sizes.hashed:,} CSV rows, {sizes.repeat} rounds")
    walls: dict[str, list[float]] = {"dynamic": [], "hashed": []}
    for round_index in range(sizes.repeat):
        for label, entry in (("dynamic", DYNAMIC_ENTRY), ("hashed", HASHED_ENTRY)):
            record = harness.run_once("druidflow", path, "csv", work_dir, timeout_s=args.timeout, entry=entry)
            shown = f"{record['wall_s']:.2f} s" if record["status"] == "ok" else record.get("reason", "")[:200]
            print(f"  round {round_index + 1}  {label:<8} {record['status']:<8} {shown}", flush=True)
            if record["status"] != "ok":
                problems.append(f"hashed: the {label} build failed")
                continue
            walls[label].append(record["wall_s"])
            total = sum(day["count"] for day in record["summary"]["days"].values())
            if total != sizes.hashed:
                problems.append(f"hashed: the {label} build's count {total:,} is not the {sizes.hashed:,} input rows")
    value = None
    if walls["dynamic"] and walls["hashed"]:
        value = statistics.median(walls["hashed"]) / statistics.median(walls["dynamic"])
    note = ", ".join(f"{k} {statistics.median(v):.2f} s" for k, v in walls.items() if v)
    fig = _figure("hashed (numShards 3) / dynamic ingest", value, TARGETS["hashed"], note=note)
    _print_ratio(fig)
    return fig


def memory_sizes(sizes: Sizes, data_dir: Path) -> tuple[list[int], str]:
    """The memory sizes, falling back from 50M to 20M rows when the disk cannot hold the 50M-row CSV."""
    small, large = sizes.memory
    if sizes.quick:
        return [small, large], ""
    needed = 80 * large  # about 75 bytes per CSV row, with room
    existing = data_dir / f"wikipedia-{rows_label(large)}.csv"
    free = shutil.disk_usage(data_dir if data_dir.exists() else data_dir.parent).free
    if not existing.exists() and free < needed + 10 * GIB:
        return [small, 20_000_000], f"{free / GIB:.0f} GiB free is too little for {rows_label(large)} rows: measured 5M vs 20M"
    return [small, large], ""


def memory_figure(sizes: Sizes, args: argparse.Namespace, work_dir: Path, problems: list[str]) -> dict:
    args.format = "csv"
    rows_list, note = memory_sizes(sizes, args.data)
    peaks: list[int | None] = []
    for rows in rows_list:
        path = harness.prepare_input(rows, args)
        print(f"\n[memory] Druidflow on {rows:,} CSV rows, maxRowsInMemory {sizes.memory_limit:,}")
        record = harness.run_once("druidflow", path, "csv", work_dir, max_rows_in_memory=sizes.memory_limit, timeout_s=args.timeout)
        if record["status"] != "ok":
            problems.append(f"memory: the {rows_label(rows)} build failed: {record.get('reason', '')[:300]}")
            peaks.append(None)
            continue
        print(f"  {rows_label(rows):>5}: {record['wall_s']:.2f} s, peak RSS {record['peak_rss_bytes'] / harness.MIB:,.0f} MiB", flush=True)
        peaks.append(record["peak_rss_bytes"])
    first, second = peaks
    value = second / first if first and second else None
    shown = " -> ".join(f"{rows_label(r)} {p / harness.MIB:,.0f} MiB" for r, p in zip(rows_list, peaks) if p)
    label = f"peak RSS {rows_label(rows_list[1])} / {rows_label(rows_list[0])} rows"
    fig = _figure(label, value, TARGETS["memory"], note="; ".join(filter(None, [shown, note])))
    _print_ratio(fig)
    return fig


def metadata_figures(quick: bool, pg_url: str) -> dict:
    """``run(url)`` of each metadata module, as :func:`bench.run.metadata_figures` does; under ``--quick`` only the
    modules whose ``run`` accepts ``quick`` (the others say why they were skipped)."""
    if not quick:
        return harness.metadata_figures(pg_url, SUITE_METADATA_MODULES)
    import importlib

    runnable: list[str] = []
    skipped: dict[str, dict] = {}
    for name in SUITE_METADATA_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            skipped[name.rsplit(".", 1)[-1]] = {"status": "failed", "reason": f"import failed: {exc}"}
            continue
        if "quick" in inspect.signature(module.run).parameters:
            runnable.append(name)
        else:
            skipped[name.rsplit(".", 1)[-1]] = {"status": "skipped", "reason": "its run(url) has no quick mode"}
    figures = harness.metadata_figures(pg_url, tuple(runnable), quick=True) if runnable else {}
    return {**figures, **skipped}


# --------------------------------------------------------------------------------------------------- metadata targets


def metadata_target_figures(metadata: dict) -> list[dict]:
    """Issue 20's metadata targets as summary figures, from the metadata modules' results: each wall figure with
    its ratio, and next to it the CPU the step used (client plus PostgreSQL backends), which on a loaded machine
    is the better estimate of its idle wall time."""
    from bench import locks as locks_bench
    from bench import metadata as metadata_bench
    from bench import planner as planner_bench

    def value(module: str, backend: str, key: str) -> float | None:
        found = (metadata.get(module) or {}).get(backend) or {}
        return found.get(key) if found.get("status") == "ok" else None

    def load(module: str, backend: str) -> str:
        found = (metadata.get(module) or {}).get(backend) or {}
        return str(found.get("load_average", found.get("load_average_1m", "n/a")))

    out = []
    timed = [
        ("metadata", "sqlite", "visible_timeline_1M_stored", "visible timeline, 1M stored segments, SQLite", metadata_bench.VISIBLE_TARGET_S),
        ("metadata", "postgresql", "visible_timeline_1M_stored", "visible timeline, 1M stored segments, PostgreSQL", metadata_bench.VISIBLE_TARGET_S),
        ("metadata", "postgresql", "publish_100k", "publish 100k segments, PostgreSQL", metadata_bench.PUBLISH_TARGET_S),
        ("metadata", "sqlite", "publish_100k", "publish 100k segments, SQLite", metadata_bench.PUBLISH_TARGET_S),
        ("planner", "sqlite", "plan_1M_segments", "auto-compaction plan, 1M segments", planner_bench.TARGET_S),
    ]  # fmt: skip
    for module, backend, key, label, target in timed:
        wall, cpu = value(module, backend, f"{key}_s"), value(module, backend, f"{key}_cpu_s")
        out.append(_figure(label, wall, target, unit="s", note=f"load {load(module, backend)}"))
        whose = "the client and its PostgreSQL backends" if backend == "postgresql" else "the process (SQLite runs in it)"
        out.append(_figure(f"{label}, CPU", cpu, target, unit="s", note=f"user+sys of {whose}"))
    for backend, label in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
        peak = value("metadata", backend, "visible_timeline_1M_stored_peak_mib")
        out.append(_figure(f"visible timeline peak memory, 1M stored, {label}", peak, metadata_bench.VISIBLE_TARGET_MIB, unit="MiB"))
    pairs = value("locks", "postgresql", f"{locks_bench.DISTINCT_DATASOURCE_PROCESSES}_processes_distinct_datasources_pairs_per_s")
    bound = value("locks", "postgresql", "distinct_datasources_cpu_bound_pairs_per_s")
    label = f"lock pairs/s, {locks_bench.DISTINCT_DATASOURCE_PROCESSES} processes on distinct dataSources, PostgreSQL"
    out.append(_figure(label, pairs, locks_bench.TARGET_PAIRS_PER_S, unit="/s", at_least=True, note=f"load {load('locks', 'postgresql')}"))
    out.append(_figure(f"{label}, CPU bound", bound, locks_bench.TARGET_PAIRS_PER_S, unit="/s", at_least=True,
                       note="the cores / the CPU of a pair (client + server): what an idle machine sustains"))  # fmt: skip
    for fig in out:
        _print_ratio(fig)
    return out


# --------------------------------------------------------------------------------------------------- session


def run_suite(args: argparse.Namespace, quick: bool) -> tuple[dict, bool]:
    """Every figure of issue 20; returns the payload and whether everything ran and agreed."""
    sizes = Sizes(quick, args)
    args.repeat = sizes.repeat
    work_dir = (args.work or args.data / "runs").resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    started = time.perf_counter()
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("reference", lambda: reference_builds(sizes, args, work_dir, problems)),
        ("heavy", lambda: heavy_builds(sizes, args, problems)),
        ("overhead", lambda: [overhead_figure(sizes)]),
        ("hashed", lambda: [hashed_figure(sizes, args, work_dir, problems)]),
        ("memory", lambda: [memory_figure(sizes, args, work_dir, problems)]),
    ]
    figures: list[dict] = []
    for name, step in steps:
        if name in args.skip_figures:
            continue
        try:
            figures += step()
        except Exception as exc:
            problems.append(f"{name}: {type(exc).__name__}: {exc}")
            print(f"  {name} failed: {type(exc).__name__}: {exc}", flush=True)
    metadata: dict = {"status": "skipped"}
    if not args.skip_metadata:
        metadata = metadata_figures(quick, args.pg_url)
        harness.print_metadata(metadata)
        if not quick:
            print("\n[metadata] issue 20's targets")
            figures += metadata_target_figures(metadata)
    print_summary(figures, problems, time.perf_counter() - started)
    payload = {"mode": "issue20-quick" if quick else "issue20", "figures": figures, "metadata": metadata, "problems": problems}
    return payload, not problems


def print_summary(figures: list[dict], problems: list[str], elapsed: float) -> None:
    print(f"\nIssue 20 figures ({elapsed:.0f} s; ratios compare runs of this session; on a busy machine they are noisy):")
    width = max([len(f["figure"]) for f in figures] + [10])
    print(f"  {'figure':<{width}}  {'value':>11}  {'target':>12}  {'ratio':>6}  verdict")
    for f in figures:
        value = "n/a" if f["value"] is None else f"{f['value']:.2f}{f['unit']}"
        verdict = {True: "met", False: "MISSED", None: "not measured"}[f["met"]]
        ratio = "" if f.get("ratio_to_target") is None else f"{f['ratio_to_target']:.2f}"
        print(f"  {f['figure']:<{width}}  {value:>11}  {_bound(f):>12}  {ratio:>6}  {verdict}")
    print(f"\nAgreement and failures: {'OK' if not problems else 'FAILED'}")
    for line in problems[:50]:
        print(f"  {line}")
