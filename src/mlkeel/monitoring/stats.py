"""Drift statistics on binned counts and raw samples: pure numpy/scipy, no I/O, no pandas.

Numeric features are compared on the training baseline's bins (``quantile_edges``), so the
monitor only needs per-bin counts, which the prediction log keeps as mergeable summaries.
Bins are half-open ``[edges[i], edges[i + 1])``; the outer edges are -inf and +inf, so every
future value, however far outside the training range, lands in a bin.

Count vectors passed to the comparison functions must be aligned (same bins or categories,
same order), one-dimensional, finite, non-negative, and each must have a positive total.
"""

from __future__ import annotations

import warnings

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def quantile_edges(values: npt.ArrayLike, bins: int = 10) -> FloatArray:
    """Return bin edges at the sample's quantiles, from -inf to +inf, strictly increasing.

    Quantile bins give each bin about the same share of the baseline, which keeps PSI stable.
    Only finite values count. Repeated quantiles collapse, and an edge equal to the minimum is
    dropped, so a constant (or empty) column gets the single bin ``[-inf, +inf]``.
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    sample = np.asarray(values, dtype=np.float64).ravel()
    finite = sample[np.isfinite(sample)]
    if finite.size == 0:
        return np.array([-np.inf, np.inf])
    levels = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    inner = np.unique(np.quantile(finite, levels))
    inner = inner[inner > finite.min()]
    return np.concatenate(([-np.inf], inner, [np.inf]))


def histogram(values: npt.ArrayLike, edges: npt.ArrayLike) -> IntArray:
    """Return the count of values in each bin ``[edges[i], edges[i + 1])``; NaN is skipped.

    Values below the first edge or at/above the last fall into the outer bins, so the total
    always equals the number of non-NaN values (a binary search per value, then bincount).
    """
    bounds = _edges(edges)
    sample = np.asarray(values, dtype=np.float64).ravel()
    sample = sample[~np.isnan(sample)]
    n_bins = bounds.size - 1
    index = np.clip(np.searchsorted(bounds, sample, side="right") - 1, 0, n_bins - 1)
    return np.bincount(index, minlength=n_bins).astype(np.int64)


def sorted_histogram(sorted_values: npt.ArrayLike, edges: npt.ArrayLike) -> IntArray:
    """``histogram`` of an ascending array without NaN, in O(bins log n) instead of O(n log bins).

    ``np.sort`` puts -inf first and +inf last, which land in the outer bins as in ``histogram``.
    """
    bounds = _edges(edges)
    sample = np.asarray(sorted_values, dtype=np.float64).ravel()
    below = np.searchsorted(sample, bounds[1:-1], side="left")
    return np.diff(below, prepend=0, append=sample.size).astype(np.int64)


def psi(expected_counts: npt.ArrayLike, actual_counts: npt.ArrayLike, eps: float = 1e-4) -> float:
    """Return the Population Stability Index of actual against expected (>= 0, 0 if equal).

    PSI is the industry's drift score on binned shares: sum((a - e) * ln(a / e)). Shares are
    clipped below at ``eps`` so an empty bin gives a large but finite score.
    """
    if eps <= 0:
        raise ValueError(f"eps must be positive, got {eps}")
    expected, actual = _aligned(
        expected_counts, actual_counts, ("expected_counts", "actual_counts")
    )
    e = np.clip(expected / expected.sum(), eps, None)
    a = np.clip(actual / actual.sum(), eps, None)
    return float(max(np.sum((a - e) * np.log(a / e)), 0.0))


def js_distance(p_counts: npt.ArrayLike, q_counts: npt.ArrayLike) -> float:
    """Return the Jensen-Shannon distance (base 2, in [0, 1]) between two count vectors.

    Unlike PSI it is symmetric, bounded and needs no clipping of empty bins; it equals
    ``scipy.spatial.distance.jensenshannon(p, q, base=2)``.
    """
    p, q = _aligned(p_counts, q_counts, ("p_counts", "q_counts"))
    p = p / p.sum()
    q = q / q.sum()
    m = (p + q) / 2.0
    from scipy import special

    divergence = (special.rel_entr(p, m).sum() + special.rel_entr(q, m).sum()) / (2 * np.log(2))
    return float(np.sqrt(np.clip(divergence, 0.0, 1.0)))


def wasserstein_binned(
    edges: npt.ArrayLike,
    expected_counts: npt.ArrayLike,
    actual_counts: npt.ArrayLike,
    scale: float,
) -> float:
    """Return the Wasserstein-1 distance between two binned distributions, divided by ``scale``.

    It measures how far the mass moved, in units of the baseline's std (``scale``; 0 or
    non-finite means 1). Approximation: each bin's mass sits at its midpoint, and an open-ended
    outer bin's mass sits at its finite edge. So a shift smaller than a bin is under-counted,
    and a shift beyond the training range counts only up to the outermost finite edge.
    """
    points = bin_midpoints(edges)
    expected, actual = _aligned(
        expected_counts, actual_counts, ("expected_counts", "actual_counts")
    )
    if expected.size != points.size:
        raise ValueError(
            f"counts have {expected.size} bins but the edges define {points.size}; "
            "pass counts computed on these edges"
        )
    cdf_gap = np.cumsum(expected / expected.sum() - actual / actual.sum())[:-1]
    distance = float(np.sum(np.abs(cdf_gap) * np.diff(points)))
    divisor = scale if np.isfinite(scale) and scale > 0 else 1.0
    return distance / divisor


def bin_midpoints(edges: npt.ArrayLike) -> FloatArray:
    """Return one representative point per bin: the midpoint, or the finite edge if open-ended.

    A single bin open on both sides gets the point 0.0 (any value gives a zero distance).
    """
    bounds = _edges(edges)
    lower, upper = bounds[:-1], bounds[1:]
    with np.errstate(invalid="ignore"):
        middle = (lower + upper) / 2.0
    points = np.where(np.isfinite(lower), np.where(np.isfinite(upper), middle, lower), upper)
    return np.where(np.isfinite(points), points, 0.0)


def ks_test(reference: npt.ArrayLike, current: npt.ArrayLike) -> tuple[float, float]:
    """Return the two-sample Kolmogorov-Smirnov (statistic, p-value); NaN is skipped.

    KS needs no bins, but its p-value flags negligible shifts once samples reach ~1M rows:
    read the statistic as an effect size and the p-value as a small-sample guard.
    """
    # Imported here: scipy.stats costs ~1 s at import, and profiling at training needs none of it.
    from scipy import stats

    ref = _sample(reference, "reference")
    cur = _sample(current, "current")
    with warnings.catch_warnings():
        # With many ties scipy's exact p-value can fail; it then falls back to the asymptotic
        # one and says so in a RuntimeWarning, which is noise for the monitor.
        warnings.filterwarnings("ignore", "ks_2samp: Exact calculation unsuccessful")
        result = stats.ks_2samp(ref, cur)
    return float(result.statistic), float(np.clip(result.pvalue, 0.0, 1.0))


def chi2_test(
    expected_counts: npt.ArrayLike,
    actual_counts: npt.ArrayLike,
    pseudo_count: float = 0.5,
) -> tuple[float, float]:
    """Return Pearson's chi-square goodness-of-fit (statistic, p-value) for category counts.

    The standard test for categorical frequencies. Expected counts are scaled to the actual
    total; a category never seen in the baseline gets ``pseudo_count`` (in the units of
    ``expected_counts``) so it yields a large statistic instead of a division by zero.
    Categories absent from both sides are ignored. Fewer than two categories give (0.0, 1.0).
    """
    if pseudo_count <= 0:
        raise ValueError(f"pseudo_count must be positive, got {pseudo_count}")
    expected, actual = _aligned(
        expected_counts, actual_counts, ("expected_counts", "actual_counts")
    )
    seen = (expected > 0) | (actual > 0)
    expected, actual = expected[seen], actual[seen]
    if expected.size < 2:
        return 0.0, 1.0
    expected = np.where(expected > 0, expected, pseudo_count)
    expected = expected / expected.sum() * actual.sum()
    statistic = float(np.sum((actual - expected) ** 2 / expected))
    from scipy import special  # chdtrc is chi2.sf without importing scipy.stats (~60 MiB)

    p_value = float(special.chdtrc(expected.size - 1, statistic))
    return statistic, float(np.clip(p_value, 0.0, 1.0))


def _edges(edges: npt.ArrayLike) -> FloatArray:
    bounds = np.asarray(edges, dtype=np.float64)
    if bounds.ndim != 1 or bounds.size < 2:
        raise ValueError(
            f"edges must be a 1-D array of at least 2 values, got shape {bounds.shape}"
        )
    if np.isnan(bounds).any() or not np.all(np.diff(bounds) > 0):
        raise ValueError("edges must be strictly increasing and contain no NaN")
    return bounds


def _counts(counts: npt.ArrayLike, name: str) -> FloatArray:
    values = np.asarray(counts, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {values.shape}")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError(f"{name} must be finite and non-negative")
    if values.sum() <= 0:
        raise ValueError(f"{name} sum to 0: there is nothing to compare; skip empty windows")
    return values


def _aligned(
    first: npt.ArrayLike, second: npt.ArrayLike, names: tuple[str, str]
) -> tuple[FloatArray, FloatArray]:
    a = _counts(first, names[0])
    b = _counts(second, names[1])
    if a.size != b.size:
        raise ValueError(
            f"count vectors must be aligned, got lengths {a.size} and {b.size}; "
            "compute both on the same bins or categories"
        )
    return a, b


def _sample(values: npt.ArrayLike, name: str) -> FloatArray:
    sample = np.asarray(values, dtype=np.float64).ravel()
    sample = sample[~np.isnan(sample)]
    if sample.size == 0:
        raise ValueError(f"{name} sample has no non-NaN values; KS needs at least one")
    return sample


def ks_binned(expected_counts: npt.ArrayLike, actual_counts: npt.ArrayLike) -> tuple[float, float]:
    """Return the KS (statistic, p-value) estimated from counts on shared bins.

    The statistic is the largest gap between the two binned CDFs at the bin edges: it never
    exceeds the exact KS statistic of the raw samples, and falls short of it by at most the
    largest share either sample has in one bin (the CDFs are monotone inside a bin). The
    p-value is the asymptotic Kolmogorov distribution's survival at ``sqrt(en) * D`` with the
    effective sample size ``en = n * m / (n + m)`` of the two totals; being computed from a
    statistic that can only be smaller, it errs towards "no evidence of drift".
    """
    expected, actual = _aligned(
        expected_counts, actual_counts, ("expected_counts", "actual_counts")
    )
    m, n = expected.sum(), actual.sum()
    gaps = np.cumsum(expected / m - actual / n)[:-1]
    statistic = float(np.max(np.abs(gaps))) if gaps.size else 0.0
    from scipy import special

    p_value = float(special.kolmogorov(np.sqrt(n * m / (n + m)) * statistic))
    return statistic, float(np.clip(p_value, 0.0, 1.0))


def rebin(edges: npt.ArrayLike, counts: npt.ArrayLike, coarse_edges: npt.ArrayLike) -> IntArray:
    """Return `counts` on `edges` summed into the bins of `coarse_edges`.

    Exact when every coarse edge is also an edge of `edges` (as a profile's deciles are of its
    fine bins); otherwise each fine bin counts whole in the coarse bin holding its lower edge.
    """
    fine = _edges(edges)
    coarse = _edges(coarse_edges)
    values = np.asarray(counts, dtype=np.int64)
    if values.shape != (fine.size - 1,):
        raise ValueError(f"counts have {values.size} bins but the edges define {fine.size - 1}")
    index = np.clip(np.searchsorted(coarse, fine[:-1], side="right") - 1, 0, coarse.size - 2)
    return np.bincount(index, weights=values, minlength=coarse.size - 1).astype(np.int64)


def binned_quantiles(
    edges: npt.ArrayLike,
    counts: npt.ArrayLike,
    levels: npt.ArrayLike,
    low: float,
    high: float,
) -> FloatArray:
    """Estimate quantiles of binned values, interpolating linearly inside a bin.

    ``low``/``high`` (the sample's min and max) bound the open outer bins and clamp every
    estimate, so each estimate lies in the bin that holds the true quantile.
    """
    bounds = np.clip(_edges(edges), low, high)
    weights = np.asarray(counts, dtype=np.float64)
    cumulative = np.concatenate(([0.0], np.cumsum(weights)))
    targets = np.asarray(levels, dtype=np.float64) * cumulative[-1]
    index = np.clip(np.searchsorted(cumulative, targets, side="left") - 1, 0, weights.size - 1)
    inside = np.divide(
        targets - cumulative[index],
        weights[index],
        out=np.zeros_like(targets),
        where=weights[index] > 0,
    )
    lower, upper = bounds[index], bounds[index + 1]
    return np.asarray(lower + (upper - lower) * np.clip(inside, 0.0, 1.0), dtype=np.float64)
