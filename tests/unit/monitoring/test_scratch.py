"""Scratch buffers: reused within a thread, grown when asked for more, never shared."""

from __future__ import annotations

import threading

import numpy as np

from mlkeel.monitoring.scratch import Scratch


def test_a_buffer_is_reused_for_any_shape_that_fits() -> None:
    scratch = Scratch()
    first = scratch.array("work", (4, 100), np.float64)
    again = scratch.array("work", (20, 10), np.float64)
    assert again.shape == (20, 10)
    assert again.flags.c_contiguous
    assert np.shares_memory(first, again)


def test_a_buffer_grows_when_asked_for_more_and_by_dtype() -> None:
    scratch = Scratch()
    small = scratch.array("work", (2, 10), np.float64)
    large = scratch.array("work", (2, 1_000), np.float64)
    assert not np.shares_memory(small, large)
    assert large.size == 2_000
    ints = scratch.array("work", (2, 10), np.intp)
    assert ints.dtype == np.intp


def test_each_thread_has_its_own_buffers() -> None:
    scratch = Scratch()
    mine = scratch.array("work", (1, 100), np.float64)
    theirs: list[np.ndarray] = []
    thread = threading.Thread(
        target=lambda: theirs.append(scratch.array("work", (1, 100), np.float64))
    )
    thread.start()
    thread.join()
    assert not np.shares_memory(mine, theirs[0])
