"""``druidflow run``'s fixed overhead: a tiny index spec end to end, in a fresh process, minus its build.

``python -m bench.overhead [--repeat 5]`` writes a 100-row CSV and its index spec to a temporary directory,
creates the SQLite metadata DB once (so every timed run finds the schema at head, as a user's second run does),
then runs ``python -m bench.overhead --child SPEC`` that many times: the child times the whole CLI
(``druidflow.cli.main``) from the interpreter's start and the build step inside it, and reports which heavy
modules were imported. The figure is the median of (process wall time - build time); the target is <= 0.3 s.

``run(repeat) -> dict`` is what ``bench.run`` calls.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 0.3
#: Modules a ``druidflow run`` of an index spec has no use for; any of them imported is listed in the result.
HEAVY_MODULES = ("pandas", "alembic", "boto3", "botocore", "duckdb", "polars", "airflow", "sqlglot", "fsspec")
ROWS = 100


def _write_inputs(directory: Path) -> Path:
    from bench.generate import generate
    from bench.reference_spec import reference_spec

    paths = generate(ROWS, directory, formats=("csv",), name="tiny", use_manifest=False)
    spec = reference_spec(paths["csv"].resolve(), "csv")
    spec_path = directory / "tiny-index.json"
    spec_path.write_text(json.dumps(spec))
    return spec_path


def _child(spec: str, result: str) -> int:
    """In the child: the CLI on ``spec``, timing the build step; the result JSON goes to ``result``."""
    import contextlib
    import io

    from druidflow import cli
    from druidflow.tasks import index

    build_s = 0.0
    original = index.IndexDefinition.build_all

    def timed_build_all(self: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal build_s
        started = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            build_s += time.perf_counter() - started

    index.IndexDefinition.build_all = timed_build_all  # type: ignore[method-assign]
    with contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(["run", spec])
    imported = [m for m in HEAVY_MODULES if m in sys.modules]
    Path(result).write_text(json.dumps({"exit_code": code, "build_s": build_s, "heavy_imports": imported}))
    return code


def run(repeat: int = 5) -> dict[str, Any]:
    """The fixed overhead of ``druidflow run``: median over ``repeat`` fresh processes, with its parts."""
    with tempfile.TemporaryDirectory(prefix="druidflow-overhead-") as tmp:
        directory = Path(tmp)
        spec = _write_inputs(directory)
        env = {
            **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
            # An installed package has its bytecode compiled; without a cache every run would compile each module
            # it imports from source (about 2 s here). The cache goes to the temporary directory, not the checkout.
            "PYTHONPYCACHEPREFIX": str(directory / "pycache"),
            "DRUIDFLOW_METADATA_URL": f"sqlite:///{directory / 'metadata.db'}",
            "DRUIDFLOW_DEEP_STORAGE": str(directory / "deep"),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        }
        subprocess.run([sys.executable, "-m", "druidflow.cli", "migrate"], env=env, check=True, capture_output=True)
        bare = []
        runs = []
        child = [sys.executable, "-m", "bench.overhead", "--child", str(spec), "--result", str(directory / "result.json")]
        subprocess.run(child, cwd=REPO_ROOT, env=env, check=True, capture_output=True)  # untimed: fills the bytecode cache
        for _ in range(repeat):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            bare.append(time.perf_counter() - started)
            result = directory / "result.json"
            cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            done = subprocess.run(child, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
            wall = time.perf_counter() - started
            cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
            if done.returncode != 0 or not result.exists():
                raise RuntimeError(f"druidflow run failed: {done.stderr.strip()[-2000:]}")
            record = json.loads(result.read_text())
            runs.append({"wall_s": wall, "cpu_s": cpu, **record})
    overhead = statistics.median(r["wall_s"] - r["build_s"] for r in runs)
    return {
        "fixed_overhead_s": round(overhead, 3),
        "target_s": TARGET_S,
        "ratio_to_target": round(overhead / TARGET_S, 2),
        "met": overhead <= TARGET_S,
        "median_wall_s": round(statistics.median(r["wall_s"] for r in runs), 3),
        "median_build_s": round(statistics.median(r["build_s"] for r in runs), 3),
        # CPU time of the whole child (build included): steadier than wall time when the machine is busy.
        "median_cpu_s": round(statistics.median(r["cpu_s"] for r in runs), 3),
        "bare_interpreter_s": round(statistics.median(bare), 3),
        "heavy_imports": sorted({m for r in runs for m in r["heavy_imports"]}),
        "runs": repeat,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args.child, args.result)
    figure = run(args.repeat)
    print(f"druidflow run fixed overhead: {figure['fixed_overhead_s']:.3f} s (wall {figure['median_wall_s']:.3f} s - build "
          f"{figure['median_build_s']:.3f} s; {figure['median_cpu_s']:.3f} s CPU in all; a bare interpreter starts in {figure['bare_interpreter_s']:.3f} s), "
          f"{figure['ratio_to_target']:.2f}x the target {TARGET_S} s: {'met' if figure['met'] else 'missed'}")  # fmt: skip
    print(f"heavy modules imported: {', '.join(figure['heavy_imports']) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
