"""The token checks run on the event loop, not in a worker thread."""

from __future__ import annotations

import inspect

import pytest

from mlkeel.serving.auth import require_admin, require_predict


@pytest.mark.parametrize("dependency", [require_predict, require_admin])
def test_token_dependencies_are_coroutines_so_fastapi_needs_no_thread_for_them(
    dependency: object,
) -> None:
    # FastAPI runs a plain-function dependency in its threadpool: one thread round trip per
    # request (~15% of one-row throughput) for a header comparison.
    assert inspect.iscoroutinefunction(dependency)
