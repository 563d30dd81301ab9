"""The yardstick: time Druidflow's index build against what a user would write instead, on the reference job.

``python -m bench.run --rows 5M [--repeat 3]`` generates the dataset if needed, then runs, in turn and in the
same session so that the ratios are fair, each engine ``--repeat`` times, EACH RUN IN A FRESH CHILD PROCESS (so
the peak RSS, the child's own ``VmHWM``, is that engine's alone): Druidflow's index engine in-process, polars,
DuckDB and the floor (pyarrow read, one Parquet LZ4 file written, no rollup). The rounds are interleaved (D, P, K, F, D, ...)
so that a burst of load from elsewhere does not land on one engine only.

It prints, per engine, the median wall time, rows/s, peak RSS, CPU time and output bytes; the ratios
Druidflow/fastest peer and Druidflow/floor; checks that all outputs agree per day (rows after rollup and the totals
of count, added, deleted, delta) and exits 1 if they do not or an engine failed. Then the metadata figures
(``bench.locks``, ``bench.metadata`` and ``bench.kill``, each ``run(url) -> dict``, on SQLite and PostgreSQL) and the Airflow
end-to-end time (``--airflow``). Results go to ``bench/results/<timestamp>-<rows>.json``.

``--memory`` runs Druidflow on 5M and 50M rows (``--memory-rows``) with maxRowsInMemory 1,000,000 and prints both
peak RSS values, which should be the same: memory must not grow with the input.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path

from bench.agreement import check_agreement, summarize
from bench.engines import ENGINES, PEERS, output_root
from bench.generate import dataset_paths, generate, parse_rows, rows_label

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "bench" / "results"
DEFAULT_PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
METADATA_MODULES = ("bench.locks", "bench.metadata", "bench.planner", "bench.kill")
AIRFLOW_MODULE = "bench.airflow_e2e"  # expected to expose run(input_path: str, input_format: str) -> {"wall_s": ...}
TARGET_VS_PEER = 1.0
TARGET_VS_FLOOR = 1.4
MIB = 2**20


# --------------------------------------------------------------------------------------------------- one run


def cpu_times() -> dict[str, float] | None:
    """Machine-wide CPU seconds from /proc/stat: ``busy`` (all non-idle work) and ``steal`` (taken by the host)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return {"busy": (user + nice + system + irq + softirq) / tick, "steal": steal / tick}


def run_once(
    engine: str,
    input_path: Path,
    input_format: str,
    work_dir: Path,
    *,
    max_rows_in_memory: int = 1_000_000,
    timeout_s: float = 3600,
    keep: bool = False,
    entry: str | None = None,
) -> dict:
    """Run ``engine`` once in a fresh child process; return its record (status, times, peak RSS, output summary)."""
    run_dir = work_dir / f"{engine}-{uuid.uuid4().hex[:8]}"
    out_dir, tmp_dir = run_dir / "out", run_dir / "tmp"
    tmp_dir.mkdir(parents=True)
    result_file, log_file = run_dir / "result.json", run_dir / "log.txt"
    cmd = [
        sys.executable, "-m", "bench.engines", engine, "--input", str(input_path), "--format", input_format,
        "--out", str(out_dir), "--result", str(result_file), "--max-rows-in-memory", str(max_rows_in_memory),
    ]  # fmt: skip
    # Temporary files (e.g. intermediate persists) go to the run's own directory, removed afterwards.
    env = {**os.environ, "TMPDIR": str(tmp_dir)}
    if entry is not None:  # another build in Druidflow's place (e.g. bench.hashed.run_num_shards)
        env["DRUIDFLOW_BENCH_ENTRY"] = entry
    record: dict = {"engine": engine, "load_1m_before": os.getloadavg()[0]}
    machine_before = cpu_times()
    started = time.perf_counter()
    with open(log_file, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            proc.kill()

        killer = threading.Timer(timeout_s, kill)
        killer.start()
        try:
            # wait4 gives this child's own CPU time (RUSAGE_CHILDREN would mix all children); the peak RSS comes from
            # the child itself (VmHWM), because ru_maxrss also counts the RSS of this parent at fork time.
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
    record.update(
        process_wall_s=time.perf_counter() - started,
        cpu_s=usage.ru_utime + usage.ru_stime,
        exit_code=proc.returncode,
    )
    machine_after = cpu_times()
    if machine_before and machine_after:
        # How busy the rest of the machine was meanwhile (other processes, the host's steal), in cores: the noise.
        wall = record["process_wall_s"]
        others = machine_after["busy"] - machine_before["busy"] - record["cpu_s"]
        record["others_cores"] = max(others, 0.0) / wall
        record["steal_cores"] = (machine_after["steal"] - machine_before["steal"]) / wall
    if result_file.exists():
        record.update(json.loads(result_file.read_text()))
    else:
        tail = log_file.read_text(errors="replace")[-2000:]
        why = f"killed after {timeout_s:g} s (--timeout)" if timed_out.is_set() else f"exited with {proc.returncode}"
        record.update(status="failed", reason=f"child {why} and left no result; log tail:\n{tail}")
    if record["status"] == "ok":
        root = output_root(engine, out_dir)
        record["output_bytes"] = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
        record["output_files"] = sum(1 for p in root.rglob("*.parquet"))
        try:
            record["summary"] = summarize(root)
        except (FileNotFoundError, ValueError, TypeError) as exc:
            record.update(status="failed", reason=f"output unreadable: {exc}")
    if "report" in record and len(json.dumps(record["report"], default=str)) > 100_000:
        record["report"] = {"truncated": True, "keys": sorted(record["report"])}
    if not keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    else:
        record["run_dir"] = str(run_dir)
    return record


# --------------------------------------------------------------------------------------------------- statistics


def engine_stats(records: list[dict], rows: int) -> dict:
    """Per engine: status, median wall time, rows/s, peak RSS (max over runs), median CPU time, output bytes."""
    stats: dict[str, dict] = {}
    for engine in dict.fromkeys(r["engine"] for r in records):
        mine = [r for r in records if r["engine"] == engine]
        ok = [r for r in mine if r["status"] == "ok"]
        if not ok:
            stats[engine] = {"status": mine[-1]["status"], "reason": mine[-1].get("reason", "")}
            continue
        wall = statistics.median(r["wall_s"] for r in ok)
        stats[engine] = {
            "status": "ok" if len(ok) == len(mine) else "failed",
            "runs": len(ok),
            "wall_s": [round(r["wall_s"], 3) for r in ok],
            "median_wall_s": wall,
            "rows_per_s": rows / wall if wall > 0 else None,
            "peak_rss_bytes": max(r["peak_rss_bytes"] for r in ok),
            "median_cpu_s": statistics.median(r["cpu_s"] for r in ok),
            "output_bytes": int(statistics.median(r["output_bytes"] for r in ok)),
            "median_others_cores": _median_of(ok, "others_cores"),
            "median_steal_cores": _median_of(ok, "steal_cores"),
        }
    return stats


def _median_of(records: list[dict], key: str) -> float | None:
    values = [r[key] for r in records if r.get(key) is not None]
    return statistics.median(values) if values else None


def ratios(stats: dict) -> dict:
    """Druidflow's median time over the fastest peer's and over the floor's, and its peak RSS over the peers'."""
    ok = {e: s for e, s in stats.items() if s.get("status") == "ok"}
    out: dict = {}
    peers = [e for e in PEERS if e in ok]
    if peers:
        fastest = min(peers, key=lambda e: ok[e]["median_wall_s"])
        out["fastest_peer"] = fastest
    if "druidflow" not in ok:
        return out
    druid = ok["druidflow"]
    if peers:
        out["druidflow_vs_fastest_peer"] = druid["median_wall_s"] / ok[fastest]["median_wall_s"]
        out["druidflow_rss_vs_lowest_peer"] = druid["peak_rss_bytes"] / min(ok[e]["peak_rss_bytes"] for e in peers)
    if "floor" in ok:
        out["druidflow_vs_floor"] = druid["median_wall_s"] / ok["floor"]["median_wall_s"]
    return out


def agreement(records: list[dict], rows: int) -> list[str]:
    """Problems with the outputs: engines disagreeing (last run of each), or an engine's runs disagreeing."""
    latest: dict[str, dict] = {}
    problems: list[str] = []
    for record in records:
        if "summary" not in record:
            continue
        engine = record["engine"]
        if engine in latest:
            problems += [f"{engine} run to run: {p}" for p in check_agreement({"before": latest[engine], "now": record["summary"]})]
        latest[engine] = record["summary"]
    return problems + check_agreement(latest, expected_rows=rows)


# --------------------------------------------------------------------------------------------------- the session


def machine_info() -> dict:
    """Cores, CPU model, memory, Python and library versions, the git commit."""
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_bytes = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_bytes = int(line.split()[1]) * 1024
    except OSError:
        pass
    versions: dict[str, str | None] = {}
    for dist in ("druidflow", "pyarrow", "polars", "duckdb", "numpy", "sqlalchemy", "pydantic", "apache-airflow"):
        try:
            versions[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            versions[dist] = None
    git = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True)
    return {
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": cpu_model or platform.processor(),
        "memory_bytes": mem_bytes,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
        "git_commit": git.stdout.strip() or None,
    }


def warm_cache(path: Path) -> float:
    """Read the input once so that every timed run finds it in the page cache; returns the seconds it took."""
    started = time.perf_counter()
    with open(path, "rb") as f:
        while f.read(16 * MIB):
            pass
    return time.perf_counter() - started


def run_rounds(engines: list[str], input_path: Path, args: argparse.Namespace, work_dir: Path, max_rows: int) -> list[dict]:
    """``args.repeat`` interleaved rounds over ``engines``; an engine that is unavailable or cannot start is not retried."""
    records: list[dict] = []
    active = list(engines)
    for round_index in range(args.repeat):
        for engine in list(active):
            record = run_once(
                engine, input_path, args.format, work_dir,
                max_rows_in_memory=max_rows, timeout_s=args.timeout, keep=args.keep,
            )  # fmt: skip
            record["round"] = round_index + 1
            records.append(record)
            shown = f"{record['wall_s']:.2f} s" if "wall_s" in record else ""
            rss = f"{record['peak_rss_bytes'] / MIB:,.0f} MiB" if record["status"] == "ok" else ""
            noise = ""
            if record.get("others_cores") is not None:
                noise = f"  others {record['others_cores']:.2f} cores, steal {record['steal_cores']:.2f}"
            print(
                f"  round {round_index + 1}  {engine:<10} {record['status']:<12} {shown:>10} {rss:>11}"
                f"  load {record['load_1m_before']:.2f}{noise}",
                flush=True,
            )
            if record["status"] != "ok":
                print(f"    {engine}: {record.get('reason')}", flush=True)
            # Absent, or broken before its job started (e.g. an import error): another round would say the same.
            if record["status"] == "unavailable" or (record["status"] == "failed" and "wall_s" not in record):
                active.remove(engine)
    return records


def print_table(stats: dict, rows: int) -> None:
    """The results table."""
    print()
    print(
        f"{'engine':<10} {'runs':>4} {'median s':>9} {'rows/s':>12} {'peak RSS':>11} {'CPU s':>7} {'output':>11}"
        f" {'others':>7} {'steal':>6}"
    )
    for engine, s in stats.items():
        if s.get("status") != "ok" and "median_wall_s" not in s:
            print(f"{engine:<10} {s['status']}: {s.get('reason', '')[:100]}")
            continue
        print(
            f"{engine:<10} {s['runs']:>4} {s['median_wall_s']:>9.2f} {s['rows_per_s']:>12,.0f}"
            f" {s['peak_rss_bytes'] / MIB:>7,.0f} MiB {s['median_cpu_s']:>7.1f} {s['output_bytes'] / MIB:>7,.1f} MiB"
            f" {_cores(s['median_others_cores']):>7} {_cores(s['median_steal_cores']):>6}"
        )
    print("(others, steal: cores busy with other processes / taken by the host during the runs, median; noise)")


def _cores(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def print_ratios(r: dict) -> None:
    """The ratios against the targets of issue 8."""
    if "druidflow_vs_fastest_peer" in r:
        v = r["druidflow_vs_fastest_peer"]
        print(f"Druidflow / fastest peer ({r['fastest_peer']}): {v:.2f}x  (target <= {TARGET_VS_PEER:.2f}: "
              f"{'met' if v <= TARGET_VS_PEER else 'missed'})")  # fmt: skip
        print(f"Druidflow peak RSS / lowest peer's: {r['druidflow_rss_vs_lowest_peer']:.2f}x  (target < 1)")
    else:
        print("Druidflow / fastest peer: not measured (Druidflow unavailable or failed)")
    if "druidflow_vs_floor" in r:
        v = r["druidflow_vs_floor"]
        print(f"Druidflow / floor: {v:.2f}x  (target <= {TARGET_VS_FLOOR:.2f}: {'met' if v <= TARGET_VS_FLOOR else 'missed'})")
    else:
        print("Druidflow / floor: not measured")


def metadata_figures(pg_url: str, modules: tuple[str, ...] = METADATA_MODULES, **options: object) -> dict:
    """``run(url, **options)`` of each metadata benchmark module, on a temporary SQLite file and on PostgreSQL."""
    figures: dict = {}
    for module_name in modules:
        short = module_name.rsplit(".", 1)[-1]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                figures[short] = {"status": "failed", "reason": f"import failed: {exc}"}
            else:
                figures[short] = {"status": "not available yet"}
            continue
        figures[short] = {}
        for backend in ("sqlite", "postgresql"):
            with tempfile.TemporaryDirectory(prefix="druidflow-bench-") as tmp:
                url = f"sqlite:///{tmp}/metadata.db" if backend == "sqlite" else pg_url
                started = time.perf_counter()
                try:
                    figures[short][backend] = {"status": "ok", **module.run(url, **options)}
                except Exception as exc:
                    figures[short][backend] = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
                figures[short][backend]["elapsed_s"] = round(time.perf_counter() - started, 3)
    return figures


def print_metadata(figures: dict) -> None:
    """The metadata figures: per module, one line per figure with a column per backend."""
    print("\nMetadata figures")
    for short, per_backend in figures.items():
        if "status" in per_backend:
            print(f"  bench.{short}: {per_backend['status']} {per_backend.get('reason', '')}".rstrip())
            continue
        backends = list(per_backend)
        print(f"  bench.{short:<40}" + "".join(f"{b:>16}" for b in backends))
        keys = list(dict.fromkeys(k for values in per_backend.values() for k in values if k not in ("status", "reason")))
        for backend, values in per_backend.items():
            if values["status"] != "ok":
                print(f"    [{backend}] {values['status']}: {values.get('reason', '')}")
        for key in keys:
            print(f"    {key:<42}" + "".join(f"{_fmt(per_backend[b].get(key, '')):>16}" for b in backends))


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def airflow_figure(enabled: bool, input_path: Path, input_format: str) -> dict:
    """The end-to-end time of ``druidflow_index`` under a real scheduler, when asked for and wired."""
    if not enabled:
        return {"status": "not measured", "reason": "pass --airflow"}
    try:
        module = importlib.import_module(AIRFLOW_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != AIRFLOW_MODULE:
            return {"status": "failed", "reason": f"import failed: {exc}"}
        return {"status": "not measured", "reason": f"{AIRFLOW_MODULE} is not wired yet"}
    try:
        return {"status": "ok", **module.run(str(input_path), input_format)}
    except Exception as exc:
        return {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}


def save_results(payload: dict, label: str) -> Path:
    """Write ``bench/results/<timestamp>-<label>.json`` and return its path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"{stamp}-{label}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def speed_session(args: argparse.Namespace, engines: list[str], work_dir: Path) -> tuple[dict, bool]:
    """The main comparison on one dataset size; returns the results and whether everything passed."""
    rows = parse_rows(args.rows)
    input_path = prepare_input(rows, args)
    print(f"reference job on {rows:,} rows ({input_path}), {args.repeat} runs per engine, one child process each")
    records = run_rounds(engines, input_path, args, work_dir, args.max_rows_in_memory)
    stats = engine_stats(records, rows)
    print_table(stats, rows)
    r = ratios(stats)
    print()
    print_ratios(r)
    problems = agreement(records, rows)
    compared = sorted({rec["engine"] for rec in records if "summary" in rec})
    print(f"\nAgreement (per day: rows after rollup, totals of count/added/deleted/delta) across {', '.join(compared)}: "
          f"{'OK' if not problems else 'FAILED'}")  # fmt: skip
    for line in problems[:50]:
        print(f"  {line}")
    figures = {"status": "skipped"} if args.skip_metadata else metadata_figures(args.pg_url)
    if not args.skip_metadata:
        print_metadata(figures)
    airflow = airflow_figure(args.airflow, input_path, args.format)
    in_process = stats.get("druidflow", {}).get("median_wall_s")
    print("\nAirflow end-to-end (druidflow_index, LocalExecutor): ", end="")
    if airflow["status"] == "ok":
        extra = f" vs {in_process:.2f} s in-process" if in_process else ""
        print(f"{airflow['wall_s']:.2f} s{extra}")
    else:
        print(f"{airflow['status']} ({airflow.get('reason', '')})")
    failed = [e for e, s in stats.items() if s.get("status") == "failed"]
    payload = {
        "mode": "speed",
        "rows": rows,
        "format": args.format,
        "repeat": args.repeat,
        "max_rows_in_memory": args.max_rows_in_memory,
        "engines": stats,
        "ratios": r,
        "agreement": {"ok": not problems, "problems": problems, "compared": compared},
        "metadata": figures,
        "airflow": airflow,
        "runs": records,
    }
    return payload, not problems and not failed


def memory_session(args: argparse.Namespace, engines: list[str], work_dir: Path) -> tuple[dict, bool]:
    """Druidflow (and any other ``--engines``) on each of ``--memory-rows``: peak RSS must not grow with the input."""
    sizes = [parse_rows(s) for s in args.memory_rows.split(",")]
    per_size: dict[str, dict] = {}
    all_problems: list[str] = []
    for rows in sizes:
        input_path = prepare_input(rows, args)
        print(f"memory: {rows:,} rows ({input_path}), maxRowsInMemory {args.max_rows_in_memory:,}")
        records = run_rounds(engines, input_path, args, work_dir, args.max_rows_in_memory)
        problems = agreement(records, rows)
        all_problems += [f"{rows_label(rows)}: {p}" for p in problems]
        per_size[rows_label(rows)] = {"rows": rows, "engines": engine_stats(records, rows), "runs": records}
    print(f"\n{'engine':<10} " + " ".join(f"{label + ' peak RSS':>16}" for label in per_size) + f" {'growth':>8}")
    growth: dict[str, float] = {}
    for engine in engines:
        values = [per_size[label]["engines"].get(engine, {}).get("peak_rss_bytes") for label in per_size]
        shown = " ".join(f"{v / MIB:>12,.0f} MiB" if v else f"{'n/a':>16}" for v in values)
        if all(values) and len(values) > 1:
            growth[engine] = values[-1] / values[0]
        shown_growth = f"{growth[engine]:.2f}x" if engine in growth else "n/a"
        print(f"{engine:<10} {shown} {shown_growth:>8}")
    print(f"\nAgreement (each size): {'OK' if not all_problems else 'FAILED'}")
    for line in all_problems[:50]:
        print(f"  {line}")
    failed = [e for size in per_size.values() for e, s in size["engines"].items() if s.get("status") == "failed"]
    payload = {
        "mode": "memory",
        "format": args.format,
        "max_rows_in_memory": args.max_rows_in_memory,
        "sizes": per_size,
        "rss_growth": growth,
        "agreement": {"ok": not all_problems, "problems": all_problems},
    }
    return payload, not all_problems and not failed


def prepare_input(rows: int, args: argparse.Namespace) -> Path:
    """Generate the dataset if it is not there yet, and read it once into the page cache."""
    path = dataset_paths(rows, args.data, (args.format,))[args.format]
    started = time.perf_counter()
    generate(rows, args.data, formats=(args.format,), seed=args.seed)
    if (took := time.perf_counter() - started) > 1:
        print(f"generated {path} in {took:.1f} s")
    warm_cache(path)
    return path.resolve()


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default="5M", help="dataset size: 1M, 5M, 50M or an integer (default 5M)")
    parser.add_argument("--repeat", type=int, help="runs per engine (default 3; 1 with --memory)")
    parser.add_argument("--format", choices=["csv", "json"], default="csv", help="input file format (default csv)")
    parser.add_argument("--engines", default=",".join(ENGINES), help=f"comma-separated subset of {','.join(ENGINES)}")
    parser.add_argument("--max-rows-in-memory", type=int, default=1_000_000)
    parser.add_argument("--all", action="store_true", help="every figure of issue 20 with its ratio and target (bench/suite.py)")
    parser.add_argument("--quick", action="store_true", help="--all at CI size: a smoke check of every figure")
    parser.add_argument("--skip-figures", default="", help="with --all/--quick: comma-separated figures to leave out "
                        "(reference, heavy, overhead, hashed, memory)")
    parser.add_argument("--memory", action="store_true", help="peak RSS of Druidflow on --memory-rows (5M and 50M)")
    parser.add_argument("--memory-rows", default="5M,50M", help="sizes for --memory (default 5M,50M)")
    airflow = parser.add_mutually_exclusive_group()
    airflow.add_argument("--airflow", action="store_true", help="also time druidflow_index under a real scheduler")
    airflow.add_argument("--skip-airflow", action="store_true", help="do not time the Airflow path (the default)")
    parser.add_argument("--skip-metadata", action="store_true", help="do not run bench.locks / bench.metadata")
    parser.add_argument("--pg-url", default=os.environ.get("DRUIDFLOW_BENCH_PG_URL", DEFAULT_PG_URL))
    parser.add_argument("--data", type=Path, default=REPO_ROOT / "bench" / "data", help="dataset directory")
    parser.add_argument("--work", type=Path, help="where runs write their output (default <data>/runs)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--timeout", type=float, default=3600, help="seconds before a run is killed")
    parser.add_argument("--keep", action="store_true", help="keep each run's output directory")
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/*.json")
    args = parser.parse_args(argv)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        parser.error(f"--engines: unknown engine {unknown[0]!r}; expected a subset of {','.join(ENGINES)}")
    if args.memory and args.engines == ",".join(ENGINES):
        engines = ["druidflow"]
    if args.repeat is None:
        args.repeat = 1 if (args.memory or args.quick) else 3
    if args.repeat < 1:
        parser.error("--repeat: must be at least 1")
    try:
        for size in (args.memory_rows.split(",") if args.memory else [args.rows]):
            parse_rows(size)
    except ValueError as exc:
        parser.error(str(exc))
    work_dir = (args.work or args.data / "runs").resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    started = datetime.now(timezone.utc)
    load_before = os.getloadavg()
    machine = machine_info()
    print(f"{machine['cores']} cores ({machine['cpu_model']}), load average {load_before[0]:.2f} {load_before[1]:.2f}"
          f" {load_before[2]:.2f}, Python {machine['python']}")  # fmt: skip
    suite = args.all or args.quick
    if suite:
        from bench.suite import run_suite

        args.skip_figures = {f.strip() for f in args.skip_figures.split(",") if f.strip()}
        payload, passed = run_suite(args, quick=args.quick)
    else:
        session = memory_session if args.memory else speed_session
        payload, passed = session(args, engines, work_dir)
    load_after = os.getloadavg()
    payload = {
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": ["python", "-m", "bench.run", *(sys.argv[1:] if argv is None else argv)],
        "machine": machine,
        "load_average": {"before": load_before, "after": load_after},
        "passed": passed,
        **payload,
    }
    if not args.no_save:
        if suite:
            label = "issue20-quick" if args.quick else "issue20"
        elif args.memory:
            label = "memory-" + "-".join(rows_label(parse_rows(s)) for s in args.memory_rows.split(","))
        else:
            label = rows_label(parse_rows(args.rows))
        print(f"\nresults saved to {save_results(payload, label).relative_to(REPO_ROOT)}")
    print(f"load average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
