"""One malloc arena for a serving process's threads (glibc; this machine's C library)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# Eight threads malloc at once through ctypes (which lets go of the GIL), then the C library
# reports its arenas ("heaps") with malloc_info.
PROBE = textwrap.dedent(
    """
    import ctypes, os, sys, tempfile, threading
    from mlkeel.serving.arenas import share_one_arena
    if sys.argv[1] == "shared":
        assert share_one_arena()
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = (ctypes.c_void_p,)
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = (ctypes.c_char_p, ctypes.c_char_p)
    libc.malloc_info.argtypes = (ctypes.c_int, ctypes.c_void_p)
    libc.fclose.argtypes = (ctypes.c_void_p,)
    start = threading.Barrier(8)
    def churn():
        start.wait()
        for _ in range(200):
            for block in [libc.malloc(2048) for _ in range(50)]:
                libc.free(block)
    threads = [threading.Thread(target=churn) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    path = os.path.join(tempfile.mkdtemp(), "malloc.xml")
    handle = libc.fopen(path.encode(), b"w")
    libc.malloc_info(0, handle)
    libc.fclose(handle)
    print(open(path).read().count("<heap nr="))
    """
)


def heaps(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True
    )
    return int(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc arenas")
def test_threads_of_a_serving_process_share_one_arena() -> None:
    assert heaps("default") > 1  # threads allocating at once get arenas of their own
    assert heaps("shared") == 1
