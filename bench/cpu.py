"""CPU seconds next to wall seconds, for the metadata figures on a shared machine.

On a loaded machine a wall time is mostly waiting for a core; the CPU a step used (user + sys) is what it costs,
and on an idle machine its wall time is about that CPU (a single-threaded client and the database server working in
turn). On SQLite the database runs in the process, so the process's CPU is the whole cost. On a PostgreSQL server
on this machine the server backends' CPU is added: the bench tags its connections with an ``application_name`` and
reads each tagged backend's ``utime + stime`` from ``/proc`` before and after (backends that exit in between are not
counted; the benches keep their connections open while timed).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def tagged(url: str, tag: str) -> str:
    """``url`` with ``application_name=tag`` on PostgreSQL (unchanged elsewhere)."""
    if not url.startswith("postgresql"):
        return url
    return f"{url}{'&' if '?' in url else '?'}application_name={tag}"


def _proc_cpu_s(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14 and 15 of stat)


def backend_cpu_s(url: str, tag: str) -> dict[int, float] | None:
    """CPU seconds so far of each live PostgreSQL backend whose ``application_name`` is ``tag``, by pid; None when
    ``url`` is not PostgreSQL or the server's processes cannot be read here (a remote server)."""
    if not url.startswith("postgresql"):
        return None
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    engine = sa.create_engine(tagged(url, "druidflow_bench_cpu_probe"), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            pids = [r[0] for r in conn.execute(sa.text("SELECT pid FROM pg_stat_activity WHERE application_name = :t"), {"t": tag})]
            own = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    finally:
        engine.dispose()
    if _proc_cpu_s(int(own)) is None:
        return None  # not on this machine
    out = {}
    for pid in pids:
        cpu = _proc_cpu_s(int(pid))
        if cpu is not None:
            out[int(pid)] = cpu
    return out


@dataclass
class Cpu:
    """What :func:`measured` fills in: wall seconds, this process's CPU seconds and the tagged backends'."""

    wall_s: float = 0.0
    client_s: float = 0.0
    server_s: float | None = None

    @property
    def total_s(self) -> float:
        return self.client_s + (self.server_s or 0.0)

    def figures(self, name: str) -> dict[str, float | None]:
        """``<name>_cpu_s`` (client + server) and, where measured, ``<name>_server_cpu_s``."""
        out: dict[str, float | None] = {f"{name}_cpu_s": round(self.total_s, 3)}
        if self.server_s is not None:
            out[f"{name}_server_cpu_s"] = round(self.server_s, 3)
        return out


@contextmanager
def measured(url: str = "", tag: str = "") -> Iterator[Cpu]:
    """Measure the block: wall time, process CPU and (PostgreSQL on this machine, connections tagged ``tag``)
    the server backends' CPU."""
    cpu = Cpu()
    before = backend_cpu_s(url, tag) if tag else None
    wall, proc = time.perf_counter(), time.process_time()
    try:
        yield cpu
    finally:
        cpu.wall_s = time.perf_counter() - wall
        cpu.client_s = time.process_time() - proc
        after = backend_cpu_s(url, tag) if before is not None else None
        if before is not None and after:  # no tagged backend found afterwards: unknown, not zero
            cpu.server_s = sum(v - before.get(pid, 0.0) for pid, v in after.items())


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as ``uptime`` prints them."""
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"
