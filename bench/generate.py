"""Deterministic generator of the reference dataset: wikipedia-edit-like events over 7 days.

Every byte written is a function of ``(rows, seed)`` alone: the rows are produced in fixed chunks of
``CHUNK_ROWS``, each from its own seeded numpy generator, and encoded to CSV or JSON lines with Arrow compute,
so 5M rows take seconds and memory stays flat however many rows are asked for.

The shape of the data:

* ``timestamp``: ISO-8601 with milliseconds and ``Z``, from 2024-01-01T00:00:00.000Z for 7 days, ascending
  through the file (like an edit log); the rows are spread evenly over the week.
* ``page``: 100,000 titles, Zipf-like popularity (exponent ``PAGE_ZIPF``); each page lives in one ``namespace``
  (10 names, weighted: most edits are to articles).
* ``user``: 50,000 editors, Zipf-like activity; about 3 % of them are bots, and ``isRobot`` (a JSON boolean,
  ``true``/``false`` in CSV) says whether the editor is one.
* ``language``: 20 wiki languages and ``country``: 200 two-letter codes, both Zipf-like.
* ``added``, ``deleted``: integers with a heavy tail (70 % of edits only add, 15 % only delete, 15 % do both);
  ``delta = added - deleted``.

Run ``python -m bench.generate --rows 5M --out bench/data`` (``--format csv|json|both``). Files that already
exist with the right row count (according to ``manifest.json`` in the output directory) are skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bench.columns import COLUMNS, DAYS, DIMENSIONS, METRICS, MS_PER_DAY, SPAN_MS, START_MS

__all__ = ["COLUMNS", "DAYS", "DIMENSIONS", "METRICS", "MS_PER_DAY", "SPAN_MS", "START_MS", "generate", "generate_chunk"]

GENERATOR_VERSION = 1
DEFAULT_SEED = 42
# Part of the output's identity: another chunk size would give other bytes for the same seed.
CHUNK_ROWS = 1_000_000
ENCODE_ROWS = 250_000  # rows encoded to text at a time (bounds the memory of the text buffers)

N_PAGES = 100_000
N_USERS = 50_000
N_COUNTRIES = 200
PAGE_ZIPF = 1.0
USER_ZIPF = 1.0
LANGUAGE_ZIPF = 1.2
COUNTRY_ZIPF = 1.0
BOT_SHARE = 0.03
LANGUAGES = ("en", "de", "fr", "ja", "es", "ru", "it", "zh", "pt", "pl",
             "nl", "sv", "ar", "uk", "fa", "ko", "he", "id", "vi", "cs")  # fmt: skip
NAMESPACES = ("Main", "Talk", "User", "User talk", "Wikipedia",
              "File", "Template", "Category", "Help", "Portal")  # fmt: skip
NAMESPACE_WEIGHTS = (0.60, 0.08, 0.07, 0.06, 0.05, 0.04, 0.04, 0.03, 0.015, 0.015)

FORMATS = {"csv": "csv", "json": "json"}  # format name -> file extension
MANIFEST = "manifest.json"

# Title words: ASCII letters only, so that no CSV value ever needs quoting and no JSON string needs escaping.
_WORDS = (
    "River", "Castle", "Battle", "Station", "Island", "Church", "Bridge", "Mountain", "Lake", "Valley",
    "School", "Museum", "Railway", "Harbour", "Forest", "Palace", "Temple", "Tower", "Garden", "Market",
    "North", "South", "East", "West", "Old", "New", "Upper", "Lower", "Great", "Little",
    "Saint", "Royal", "Grand", "Central", "Golden", "Silver", "Red", "Black", "White", "Green",
    "Treaty", "Council", "Festival", "Theatre", "Airport", "Canal", "Abbey", "Park", "Road", "Square",
    "Empire", "Kingdom", "Republic", "Province", "District", "County", "Village", "City", "Port", "Bay",
    "Album", "Novel", "Film", "Song",
)  # fmt: skip
_NAMES = (
    "Anna", "Boris", "Chen", "Dara", "Elif", "Femi", "Gita", "Hugo", "Ines", "Jonas",
    "Kofi", "Lena", "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq",
    "Uma", "Vera", "Wen", "Xavi", "Yara", "Zeno",
)  # fmt: skip


@dataclass(frozen=True)
class Vocabulary:
    """The value domains of the dimensions, and how popular each value is (as cumulative distributions)."""

    pages: pa.Array  # N_PAGES distinct titles, most popular first
    page_namespace: np.ndarray  # index into NAMESPACES, per page
    users: pa.Array  # N_USERS distinct names, most active first
    user_is_robot: np.ndarray  # bool, per user
    countries: pa.Array  # N_COUNTRIES distinct codes, most frequent first
    languages: pa.Array
    namespaces: pa.Array
    page_cdf: np.ndarray
    user_cdf: np.ndarray
    language_cdf: np.ndarray
    country_cdf: np.ndarray


def _zipf_cdf(n: int, exponent: float) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** exponent
    cdf = np.cumsum(weights)
    return cdf / cdf[-1]


def _draw(rng: np.random.Generator, cdf: np.ndarray, size: int) -> np.ndarray:
    """Indices drawn by inverse transform from a cumulative distribution (vectorised)."""
    return np.minimum(np.searchsorted(cdf, rng.random(size), side="right"), len(cdf) - 1).astype(np.int32)


@lru_cache(maxsize=4)
def vocabulary(seed: int = DEFAULT_SEED) -> Vocabulary:
    """The dimension domains for ``seed`` (built once per process; 150k short strings)."""
    rng = np.random.default_rng([seed, 0])
    words = rng.integers(0, len(_WORDS), size=(N_PAGES, 2))
    pages = [f"{_WORDS[a]}_{_WORDS[b]}_{k}" for k, (a, b) in enumerate(words.tolist())]
    ns_cdf = np.cumsum(NAMESPACE_WEIGHTS) / np.sum(NAMESPACE_WEIGHTS)
    page_namespace = _draw(rng, ns_cdf, N_PAGES).astype(np.int8)
    names = rng.integers(0, len(_NAMES), size=N_USERS).tolist()
    is_robot = rng.random(N_USERS) < BOT_SHARE
    users = [f"{_NAMES[a]}{'Bot' if bot else ''}_{k}" for k, (a, bot) in enumerate(zip(names, is_robot.tolist()))]
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    all_codes = [a + b for a in letters for b in letters]
    countries = [all_codes[i] for i in rng.choice(len(all_codes), size=N_COUNTRIES, replace=False).tolist()]
    return Vocabulary(
        pages=pa.array(pages, pa.string()),
        page_namespace=page_namespace,
        users=pa.array(users, pa.string()),
        user_is_robot=is_robot,
        countries=pa.array(countries, pa.string()),
        languages=pa.array(LANGUAGES, pa.string()),
        namespaces=pa.array(NAMESPACES, pa.string()),
        page_cdf=_zipf_cdf(N_PAGES, PAGE_ZIPF),
        user_cdf=_zipf_cdf(N_USERS, USER_ZIPF),
        language_cdf=_zipf_cdf(len(LANGUAGES), LANGUAGE_ZIPF),
        country_cdf=_zipf_cdf(N_COUNTRIES, COUNTRY_ZIPF),
    )


def chunk_count(rows: int) -> int:
    """How many chunks ``rows`` rows are generated in."""
    return -(-rows // CHUNK_ROWS)


def _iso_ms(ts_ms: np.ndarray) -> pa.Array:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` for epoch milliseconds, built as fixed-width bytes (no per-row Python)."""
    n = len(ts_ms)
    days = ts_ms // MS_PER_DAY
    tod = ts_ms - days * MS_PER_DAY
    unique_days, day_of_row = np.unique(days, return_inverse=True)
    dates = np.array([str(np.datetime64(int(d), "D")) for d in unique_days], dtype="S10")
    out = np.empty((n, 24), dtype=np.uint8)
    out[:, :10] = dates.view(np.uint8).reshape(-1, 10)[day_of_row]
    fields = ((11, tod // 3_600_000, 2), (14, tod // 60_000 % 60, 2), (17, tod // 1000 % 60, 2), (20, tod % 1000, 3))
    for start, value, width in fields:
        for i in range(width):
            out[:, start + i] = 48 + value // 10 ** (width - 1 - i) % 10
    for pos, char in ((10, "T"), (13, ":"), (16, ":"), (19, "."), (23, "Z")):
        out[:, pos] = ord(char)
    offsets = np.arange(0, 24 * (n + 1), 24, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(out))


def generate_chunk(rows: int, index: int, seed: int = DEFAULT_SEED) -> pa.Table:
    """Chunk ``index`` of a ``rows``-row dataset, as an Arrow table with the file's columns and values.

    ``timestamp`` is the ISO text as written; the dimensions are strings, ``isRobot`` a bool, the metrics int64.
    """
    if not 0 <= index < chunk_count(rows):
        raise ValueError(f"chunk index {index} out of range for {rows} rows")
    vocab = vocabulary(seed)
    start, stop = index * CHUNK_ROWS, min((index + 1) * CHUNK_ROWS, rows)
    n = stop - start
    rng = np.random.default_rng([seed, 1, index])
    # Each chunk covers its proportional slice of the week, so the file is in time order.
    lo = START_MS + SPAN_MS * start // rows
    hi = START_MS + SPAN_MS * stop // rows
    ts = np.sort(rng.integers(lo, hi, size=n, dtype=np.int64))
    page = _draw(rng, vocab.page_cdf, n)
    user = _draw(rng, vocab.user_cdf, n)
    language = _draw(rng, vocab.language_cdf, n)
    country = _draw(rng, vocab.country_cdf, n)
    # Heavy-tailed sizes from integers only (a random bit width, then a value below 2**width), so the bytes do not
    # depend on the platform's floating-point library.
    kind = rng.integers(0, 100, size=n)
    size_added = rng.integers(0, np.int64(1) << rng.integers(2, 14, size=n))
    size_deleted = rng.integers(0, np.int64(1) << rng.integers(2, 12, size=n))
    added = np.where((kind < 70) | (kind >= 85), size_added, 0).astype(np.int64)
    deleted = np.where(kind >= 70, size_deleted, 0).astype(np.int64)
    return pa.table(
        {
            "timestamp": _iso_ms(ts),
            "page": vocab.pages.take(pa.array(page)),
            "language": vocab.languages.take(pa.array(language)),
            "user": vocab.users.take(pa.array(user)),
            "country": vocab.countries.take(pa.array(country)),
            "isRobot": pa.array(vocab.user_is_robot[user]),
            "namespace": vocab.namespaces.take(pa.array(vocab.page_namespace[page])),
            "added": pa.array(added),
            "deleted": pa.array(deleted),
            "delta": pa.array(added - deleted),
        }
    )


def _text(table: pa.Table, name: str) -> pa.Array:
    column = table.column(name).combine_chunks()
    if pa.types.is_boolean(column.type):
        return pc.if_else(column, "true", "false")
    if pa.types.is_string(column.type):
        return column
    return pc.cast(column, pa.string())


def _join_lines(pieces: list) -> pa.Array:
    return pc.binary_join_element_wise(*[pa.scalar(p) if isinstance(p, str) else p for p in pieces], "")


def encode_csv(table: pa.Table) -> memoryview:
    """The table's rows as CSV lines (no header), values unquoted: the vocabulary never needs quoting."""
    pieces: list = []
    for i, name in enumerate(COLUMNS):
        pieces += ([","] if i else []) + [_text(table, name)]
    return _buffer_of(_join_lines(pieces + ["\n"]))


def encode_jsonl(table: pa.Table) -> memoryview:
    """The table's rows as JSON lines: strings quoted, ``isRobot`` a JSON boolean, metrics JSON numbers."""
    pieces: list = []
    for i, name in enumerate(COLUMNS):
        quoted = name not in ("isRobot", *METRICS)
        pieces += [("{" if i == 0 else ",") + f'"{name}":' + ('"' if quoted else ""), _text(table, name)]
        if quoted:
            pieces.append('"')
    return _buffer_of(_join_lines(pieces + ["}\n"]))


def _buffer_of(lines: pa.Array) -> memoryview:
    """The concatenated bytes of a string array, zero-copy (its data buffer between the first and last offset)."""
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)
    first, last = offsets[lines.offset], offsets[lines.offset + len(lines)]
    return memoryview(lines.buffers()[2])[first:last]


ENCODERS = {"csv": encode_csv, "json": encode_jsonl}
CSV_HEADER = (",".join(COLUMNS) + "\n").encode()


def parse_rows(text: str) -> int:
    """``1M``, ``5M``, ``50M``, ``20k`` or a plain integer (underscores allowed) -> a row count."""
    match = re.fullmatch(r"\s*([0-9][0-9_]*)\s*([kKmM]?)\s*", str(text))
    if not match:
        raise ValueError(f"--rows: expected a count like 1M, 5M, 50M, 20k or 20000, got {text!r}")
    value = int(match.group(1).replace("_", "")) * {"": 1, "k": 1_000, "m": 1_000_000}[match.group(2).lower()]
    if value <= 0:
        raise ValueError(f"--rows: must be positive, got {text!r}")
    return value


def rows_label(rows: int) -> str:
    """The short label used in file names: ``5M``, ``20k`` or the plain count."""
    if rows % 1_000_000 == 0:
        return f"{rows // 1_000_000}M"
    if rows % 1_000 == 0:
        return f"{rows // 1_000}k"
    return str(rows)


def dataset_paths(rows: int, out_dir: str | Path, formats: Iterable[str] = ("csv", "json"), name: str | None = None) -> dict[str, Path]:
    """Where the files of a ``rows``-row dataset live: ``<out>/wikipedia-<label>.<ext>`` unless ``name`` is given."""
    stem = name or f"wikipedia-{rows_label(rows)}"
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"--format: unknown format {unknown[0]!r}; expected one of {sorted(FORMATS)}")
    return {fmt: Path(out_dir) / f"{stem}.{FORMATS[fmt]}" for fmt in formats}


def _read_manifest(out_dir: Path) -> dict:
    try:
        return json.loads((out_dir / MANIFEST).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _is_current(path: Path, entry: dict | None, rows: int, seed: int) -> bool:
    if entry is None or not path.exists():
        return False
    expected = {"rows": rows, "seed": seed, "generator": GENERATOR_VERSION, "bytes": path.stat().st_size}
    return all(entry.get(k) == v for k, v in expected.items())


def generate(
    rows: int,
    out_dir: str | Path,
    *,
    formats: Iterable[str] = ("csv", "json"),
    seed: int = DEFAULT_SEED,
    name: str | None = None,
    use_manifest: bool = True,
    force: bool = False,
) -> dict[str, Path]:
    """Write the ``rows``-row dataset in each format; returns the paths by format.

    With ``use_manifest``, a file already recorded in ``<out>/manifest.json`` with the same rows, seed, generator
    version and size is left alone. Files are written under a temporary name and renamed when complete.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = dataset_paths(rows, out, formats, name)
    manifest = _read_manifest(out) if use_manifest else {}
    todo = [f for f, p in paths.items() if force or not _is_current(p, manifest.get(p.name), rows, seed)]
    if not todo:
        return paths
    temps = {f: paths[f].with_name(paths[f].name + ".tmp") for f in todo}
    handles = {f: open(temps[f], "wb") for f in todo}
    try:
        if "csv" in handles:
            handles["csv"].write(CSV_HEADER)
        for index in range(chunk_count(rows)):
            table = generate_chunk(rows, index, seed)
            for offset in range(0, table.num_rows, ENCODE_ROWS):
                piece = table.slice(offset, ENCODE_ROWS)
                for fmt, handle in handles.items():
                    handle.write(ENCODERS[fmt](piece))
    finally:
        for handle in handles.values():
            handle.close()
    for fmt in todo:
        os.replace(temps[fmt], paths[fmt])
        manifest[paths[fmt].name] = {
            "rows": rows, "seed": seed, "generator": GENERATOR_VERSION, "bytes": paths[fmt].stat().st_size,
        }  # fmt: skip
    if use_manifest:
        tmp = out / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, out / MANIFEST)
    return paths


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m bench.generate --rows 5M --out bench/data [--format csv|json|both]``."""
    parser = argparse.ArgumentParser(prog="python -m bench.generate", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default="5M", help="1M, 5M, 50M, 20k or an integer (default 5M)")
    parser.add_argument("--out", default="bench/data", help="output directory (default bench/data)")
    parser.add_argument("--format", choices=["csv", "json", "both"], default="both")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--name", help="file name stem (default wikipedia-<rows>)")
    parser.add_argument("--force", action="store_true", help="rewrite even if the manifest says the file is current")
    parser.add_argument("--no-manifest", action="store_true", help="neither read nor write manifest.json")
    args = parser.parse_args(argv)
    try:
        rows = parse_rows(args.rows)
    except ValueError as exc:
        parser.error(str(exc))
    formats = ("csv", "json") if args.format == "both" else (args.format,)
    started = time.perf_counter()
    paths = generate(
        rows, args.out, formats=formats, seed=args.seed, name=args.name,
        use_manifest=not args.no_manifest, force=args.force,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    for fmt, path in paths.items():
        print(f"{path}  {rows:,} rows  {path.stat().st_size / 2**20:,.1f} MiB  ({fmt})")
    print(f"done in {elapsed:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
