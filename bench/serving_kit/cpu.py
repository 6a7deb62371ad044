"""Where the machine's CPU went during a load: the server, the load client, this process, and
everyone else. The 2 cores are shared, so a cell measured while something foreign ran is
flagged rather than silently believed.
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass
from pathlib import Path

from serving_kit.processes import CLOCK_TICKS, tree_cpu_seconds


@dataclass(frozen=True)
class Snapshot:
    wall: float
    machine_busy: float  # CPU seconds, all cores, everything but idle and iowait
    server: float  # the server's process tree
    children: float  # finished children of this process: the load client
    own: float  # this process (its memory sampler)


@dataclass(frozen=True)
class CpuShare:
    """Each party's CPU over an interval, in % of one core."""

    server_pct: float
    client_pct: float
    foreign_pct: float


def snapshot(server_pid: int) -> Snapshot:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = resource.getrusage(resource.RUSAGE_SELF)
    return Snapshot(
        wall=time.perf_counter(),
        machine_busy=_machine_busy_seconds(),
        server=tree_cpu_seconds(server_pid),
        children=children.ru_utime + children.ru_stime,
        own=own.ru_utime + own.ru_stime,
    )


def share(before: Snapshot, after: Snapshot) -> CpuShare:
    wall = max(after.wall - before.wall, 1e-9)
    server = after.server - before.server
    client = after.children - before.children
    own = after.own - before.own
    foreign = max(0.0, after.machine_busy - before.machine_busy - server - client - own)
    return CpuShare(100 * server / wall, 100 * client / wall, 100 * foreign / wall)


def _machine_busy_seconds() -> float:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
    return (sum(values) - values[3] - values[4]) / CLOCK_TICKS
