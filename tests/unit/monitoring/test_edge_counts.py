"""Edge counting on grids: the same counts as sorting, for any values and edges."""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mlkeel.monitoring.edge_counts import MAX_CELLS, EdgeCounter, grid_for


def sorted_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.sort(values[~np.isnan(values)]).searchsorted(edges, side="left")


@st.composite
def column(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Sorted finite edges, some one ulp apart; values on, next to and between them, with
    NaN, infinities and values far outside the edges."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    scale = 10.0 ** draw(st.integers(-8, 8))
    edges = np.sort(rng.normal(0.0, scale, draw(st.integers(1, 40))))
    twins = np.nextafter(edges[rng.random(edges.size) < 0.2], np.inf)
    edges = np.sort(np.concatenate([edges, twins]))
    size = draw(st.integers(1, 300))
    picks = edges[rng.integers(0, edges.size, size)]
    values = np.select(
        [rng.random(size) < 0.3, rng.random(size) < 0.3, rng.random(size) < 0.5],
        [picks, np.nextafter(picks, -np.inf), np.nextafter(picks, np.inf)],
        rng.normal(0.0, 2 * scale, size),
    )
    odd = rng.integers(0, size, draw(st.integers(0, 5)))
    values[odd] = rng.choice([np.nan, np.inf, -np.inf, 1e308, -1e308], odd.size)
    return edges, values


@settings(max_examples=200, deadline=None)
@given(st.lists(column(), min_size=1, max_size=4), st.integers(1, 3))
def test_counts_equal_sorting_the_values(columns: list, blocks: int) -> None:
    gridded = [(edges, values) for edges, values in columns if grid_for(edges) is not None]
    assume(gridded)  # edges a grid cannot separate are sorted instead: not counted here
    counter = EdgeCounter([e for e, _ in gridded], [grid_for(e) for e, _ in gridded])  # type: ignore[misc]
    rows = min(values.size for _, values in gridded)
    matrix = np.array([values[:rows] for _, values in gridded])
    counts = np.zeros(counter.slots, dtype=np.int64)
    for part in np.array_split(np.arange(rows), blocks):
        block = np.ascontiguousarray(matrix[:, part])
        counts += counter.count(block, bool(np.isnan(block).any()))
    for (edges, _), values, found in zip(gridded, matrix, counter.below(counts), strict=True):
        np.testing.assert_array_equal(found, sorted_counts(values, edges))


def test_a_grid_separates_edges_one_ulp_apart() -> None:
    edges = np.linspace(0.0, 1.0, 101)
    edges = np.sort(np.concatenate([edges, np.nextafter(edges[::10], np.inf)]))
    grid = grid_for(edges)
    assert grid is not None
    values = np.concatenate([edges, np.nextafter(edges, -np.inf), [0.5, -1.0, 2.0, np.nan]])
    counter = EdgeCounter([edges], [grid])
    counts = counter.count(values[np.newaxis, :], has_nan=True)
    np.testing.assert_array_equal(counter.below(counts)[0], sorted_counts(values, edges))


def test_edges_too_uneven_for_a_grid_have_none() -> None:
    # Five edges within 4e-9 touch two cells at most (a cell is 0.9 / 16,384 wide at least),
    # so one holds three; three equal edges share a cell however fine the grid.
    close = 0.1 + np.arange(5) * 1e-9
    assert grid_for(np.concatenate([[0.0], close, [1.0, 2.0]])) is None
    assert grid_for(np.array([1.0, 1.0, 1.0])) is None
    assert grid_for(np.array([0.0, np.inf])) is None
    assert grid_for(np.linspace(0.0, 1.0, 100)).cells <= MAX_CELLS  # type: ignore[union-attr]
