"""Markdown table rows for bench/README.md from saved results: ``python -m bench.table bench/results/*.json``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

MIB = 2**20


def rows(path: Path) -> list[str]:
    """One table row per engine of a speed session's results file (memory sessions give none)."""
    data = json.loads(path.read_text())
    if data.get("mode") != "speed":
        return []
    machine = data["machine"]
    when = data["started"][:16].replace("T", " ")
    out = []
    for engine, s in data["engines"].items():
        if "median_wall_s" not in s:
            out.append(f"| {when} | {data['rows']:,} | {engine} | {s['status']} | | | | | | |")
            continue
        noise = s.get("median_others_cores")
        out.append(
            f"| {when} | {data['rows']:,} | {engine} | {s['median_wall_s']:.2f} ({s['runs']} runs) | "
            f"{s['rows_per_s']:,.0f} | {s['peak_rss_bytes'] / MIB:,.0f} MiB | {s['median_cpu_s']:.1f} | "
            f"{s['output_bytes'] / MIB:,.1f} MiB | {'' if noise is None else f'{noise:.2f}'} | "
            f"{machine['cores']} x {machine['cpu_model']} |"
        )
    return out


HEADER = (
    "| measured (UTC) | rows | engine | median s | rows/s | peak RSS | CPU s | output | others (cores) | machine |\n"
    "|---|---:|---|---:|---:|---:|---:|---:|---:|---|"
)


def main(argv: list[str] | None = None) -> int:
    """Print the header and the rows of every results file given."""
    print(HEADER)
    for name in argv if argv is not None else sys.argv[1:]:
        for line in rows(Path(name)):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
