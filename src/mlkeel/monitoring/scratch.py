"""Reusable scratch arrays, one set per thread.

A numpy temporary over glibc's mmap threshold (128 KiB at first) is mapped fresh and faults
its pages in one by one, and freeing a few of them at the top of the heap returns that memory
to the OS, so the next ones fault again. Folding a settle of 8,192 rows x 21 columns with
fresh temporaries took ~1,400 page faults while the writer inserted between settles; with its
large temporaries in reused buffers, it takes none once the buffers exist.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import numpy.typing as npt


class Scratch(threading.local):
    """Named buffers that grow to the largest size asked for and are reused after that."""

    def __init__(self) -> None:
        self._buffers: dict[str, npt.NDArray[Any]] = {}

    def array(self, name: str, shape: tuple[int, int], dtype: type[np.generic]) -> Any:
        """A C-contiguous (rows x columns) view of buffer `name`, its contents undefined.

        Valid until the same thread asks for `name` again."""
        size = shape[0] * shape[1]
        buffer = self._buffers.get(name)
        if buffer is None or buffer.size < size or buffer.dtype != dtype:
            buffer = self._buffers[name] = np.empty(size, dtype=dtype)
        return buffer[:size].reshape(shape)


SCRATCH = Scratch()
