"""This process's resident memory as the kernel counts it: peak, current, and a peak reset."""

from __future__ import annotations

import resource


def peak_rss_bytes() -> int:
    """VmHWM (the peak since start or the last reset); ru_maxrss where /proc is missing."""
    found = _status_bytes("VmHWM:")
    return found if found is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def rss_bytes() -> int | None:
    return _status_bytes("VmRSS:")


def reset_peak() -> bool:
    """Restart VmHWM from the current RSS (Linux >= 4.0: "5" to clear_refs); False if refused."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


def _status_bytes(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
