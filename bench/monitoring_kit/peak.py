"""This process's peak resident memory, as the kernel counts it (no dependencies)."""

from __future__ import annotations

import resource


def peak_rss_bytes() -> int:
    """VmHWM from /proc/self/status; ru_maxrss where /proc is missing."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
