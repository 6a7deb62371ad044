"""Charts drawn on the server as inline SVG: no JavaScript, no CDN, they work offline.

Each function returns ``Markup`` holding one ``<svg>``; every piece of text in it (series
names, categories, tooltips) passes through ``escape``, so a category named
``<script>...`` is drawn as text. Colours come from CSS classes (``dashboard.css``).

- ``time_chart``: lines over time (volume, latency, error rate, drift score, accuracy).
- ``histogram``: a numeric feature on the baseline's bins, resampled to equal-width bars,
  the window's bars over the baseline's.
- ``category_bars``: a categorical feature's shares, window beside baseline.
- ``sparkline``: a small line for a table cell (a feature's drift score over time).
- ``timeline``: which version was champion when, with the deployment events on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from markupsafe import Markup, escape

WIDTH = 720
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 56, 16, 28, 26
DISPLAY_BINS = 30
TOP_CATEGORIES = 12
_TIME_STEPS = (
    (3600, "%H:%M"), (3 * 3600, "%H:%M"), (6 * 3600, "%m-%d %H:%M"),
    (12 * 3600, "%m-%d %H:%M"), (86400, "%m-%d"), (2 * 86400, "%m-%d"),
    (7 * 86400, "%m-%d"), (30 * 86400, "%Y-%m-%d"),
)  # fmt: skip


@dataclass(frozen=True)
class Series:
    """One line: ``points`` are (epoch seconds, value or None for a gap)."""

    name: str
    points: Sequence[tuple[float, float | None]]
    css: str = "s0"
    marked: Sequence[bool] = field(default_factory=tuple)  # per point: draw it as an alarm


@dataclass(frozen=True)
class Bins:
    """Counts of one numeric column on the baseline's edges (outer edges may be infinite)."""

    edges: Sequence[float]
    baseline: Sequence[int]
    current: Sequence[int] | None


def number(value: float | None, digits: int = 3) -> str:
    """A short human figure: 1.2k, 3.4M, 0.0123, 12."""
    if value is None or not math.isfinite(value):
        return "–"
    size = abs(value)
    for above, scale, suffix in ((1e9, 1e9, "G"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if size >= above:
            scaled = value / scale
            return f"{scaled:.{1 if abs(scaled) < 100 else 0}f}{suffix}"
    if size >= 100 or value == int(value):
        return f"{value:.0f}"
    return f"{value:.{digits}g}"


def percent(share: float | None) -> str:
    if share is None or not math.isfinite(share):
        return "–"
    return f"{share * 100:.1f}%" if abs(share) >= 0.001 or share == 0 else f"{share * 100:.2g}%"


def when(moment: float | None) -> str:
    """Epoch seconds as ``YYYY-MM-DD HH:MM UTC``."""
    if moment is None:
        return "–"
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M UTC")


# ---- lines over time ---------------------------------------------------------------------
def time_chart(
    series: Sequence[Series],
    *,
    title: str,
    span: tuple[float, float] | None = None,
    unit: str = "",
    share: bool = False,
    threshold: float | None = None,
    height: int = 190,
) -> Markup:
    """Lines over time on a shared axis; `share` formats values as percentages."""
    values = [v for s in series for _, v in s.points if v is not None and math.isfinite(v)]
    times = [t for s in series for t, _ in s.points]
    if span is None:
        span = (min(times), max(times)) if times else (0.0, 1.0)
    t0, t1 = span if span[1] > span[0] else (span[0] - 1800, span[0] + 1800)
    top = max([*values, threshold or 0.0, 0.0])
    low = min([*values, 0.0])
    ticks = nice_ticks(low, top if top > low else low + 1)
    v0, v1 = ticks[0], ticks[-1]
    frame = _Frame(WIDTH, height, t0, t1, v0, v1)

    def label(value: float) -> str:
        return (percent(value) if share else number(value)) + (f" {unit}" if unit else "")

    parts = [_open(frame, title)]
    parts += _y_axis(frame, ticks, label)
    parts += _time_axis(frame)
    if threshold is not None:
        y = frame.y(threshold)
        parts.append(
            f'<line class="threshold" x1="{frame.left}" x2="{frame.right}" '
            f'y1="{y:.1f}" y2="{y:.1f}"><title>threshold {escape(label(threshold))}</title></line>'
        )
    for item in series:
        parts.append(_line(frame, item, label))
    parts.append(_legend(frame, series))
    if not values:
        parts.append(_empty(frame, "no data in this window"))
    parts.append("</svg>")
    return Markup("".join(parts))


def _line(frame: _Frame, item: Series, label: Callable[[float], str]) -> str:
    commands: list[str] = []
    dots: list[str] = []
    pen_up = True
    points = item.points
    few = len(points) <= 48
    for index, (moment, value) in enumerate(points):
        if value is None or not math.isfinite(value):
            pen_up = True
            continue
        x, y = frame.x(moment), frame.y(value)
        commands.append(f"{'M' if pen_up else 'L'}{x:.1f} {y:.1f}")
        alarm = index < len(item.marked) and item.marked[index]
        alone = pen_up and (index + 1 == len(points) or points[index + 1][1] is None)
        pen_up = False
        if few or alarm or alone:
            tip = f"{item.name}: {label(value)} at {when(moment)}"
            css = "dot alarm" if alarm else "dot"
            dots.append(
                f'<circle class="{css} {item.css}" cx="{x:.1f}" cy="{y:.1f}" '
                f'r="{3 if alarm else 2}"><title>{escape(tip)}</title></circle>'
            )
    path = f'<path class="line {item.css}" d="{" ".join(commands)}"/>' if commands else ""
    return f"<g>{path}{''.join(dots)}</g>"


# ---- distributions -----------------------------------------------------------------------
def histogram(bins: Bins, *, title: str, low: float | None, high: float | None) -> Markup:
    """The window's distribution over the baseline's, as shares per equal-width bar.

    The baseline's bins are quantile bins (narrow where data is dense); each is spread evenly
    over its width and resampled onto `DISPLAY_BINS` equal bars between the first and last
    finite inner edges. The two outer bins (below and above those edges, where the training
    range's tails and any value outside it fall) are drawn apart at either end.
    """
    edges = np.asarray(bins.edges, dtype=np.float64)
    base = _shares(bins.baseline)
    current = None if bins.current is None else _shares(bins.current)
    inner = edges[1:-1]
    if inner.size < 2 or not np.all(np.isfinite(inner)):
        labels = [_range_label(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]
        return category_bars(labels, list(base), None if current is None else list(current),
                             title=title)  # fmt: skip
    display = np.linspace(inner[0], inner[-1], DISPLAY_BINS + 1)
    spread = _overlap(inner, display)
    base_bars = np.concatenate(([base[0]], base[1:-1] @ spread, [base[-1]]))
    current_bars = (
        None if current is None
        else np.concatenate(([current[0]], current[1:-1] @ spread, [current[-1]]))
    )  # fmt: skip
    names = [
        f"below {number(inner[0])}" + (f" (training min {number(low)})" if low is not None else ""),
        *(_range_label(display[i], display[i + 1]) for i in range(DISPLAY_BINS)),
        f"{number(inner[-1])} and above"
        + (f" (training max {number(high)})" if high is not None else ""),
    ]
    return _bars(names, base_bars, current_bars, title=title, axis=(inner[0], inner[-1]))


def category_bars(
    categories: Sequence[str],
    baseline: Sequence[float],
    current: Sequence[float] | None,
    *,
    title: str,
) -> Markup:
    """Shares per category (already normalised or raw counts), baseline and window side by
    side, the largest `TOP_CATEGORIES` by either, the rest summed as "(others)"."""
    base = _shares(baseline)
    now = None if current is None else _shares(current)
    weight = base if now is None else np.maximum(base, now)
    order = sorted(range(len(categories)), key=lambda i: (-weight[i], categories[i]))
    keep, rest = order[:TOP_CATEGORIES], order[TOP_CATEGORIES:]
    names = [categories[i] for i in keep] + (["(others)"] if rest else [])
    base_bars = np.array([base[i] for i in keep] + ([base[rest].sum()] if rest else []))
    now_bars = (
        None if now is None
        else np.array([now[i] for i in keep] + ([now[rest].sum()] if rest else []))
    )  # fmt: skip
    return _hbars(names, base_bars, now_bars, title=title)


def _bars(
    names: Sequence[str],
    base: np.ndarray,
    current: np.ndarray | None,
    *,
    title: str,
    axis: tuple[float, float],
) -> Markup:
    """Vertical bars: first and last are the outer bins, set apart by a gap."""
    height = 170
    top = float(max(base.max(initial=0), 0 if current is None else current.max(initial=0)))
    ticks = nice_ticks(0.0, top if top > 0 else 1.0, 3)
    frame = _Frame(WIDTH, height, 0.0, 1.0, ticks[0], ticks[-1])
    count = len(names)
    gap = 0.02
    slot = (1.0 - 2 * gap) / count
    parts = [_open(frame, title), *_y_axis(frame, ticks, percent)]
    zero = frame.y(0)
    shares = base.tolist()
    window = None if current is None else current.tolist()
    for index, name in enumerate(names):
        offset = index * slot + (gap if index > 0 else 0) + (gap if index == count - 1 else 0)
        x0, x1 = frame.x(offset), frame.x(offset + slot)
        tip = f"{name}: baseline {percent(shares[index])}"
        bars = _bar("baseline", x0, x1, frame.y(shares[index]), zero)
        if window is not None:
            tip += f", window {percent(window[index])}"
            bars += _bar("current", x0 + 1, x1 - 1, frame.y(window[index]), zero)
        parts.append(f"<g><title>{escape(tip)}</title>{bars}</g>")
    first, last = frame.x(gap + slot), frame.x(1 - gap - slot)
    for x, value in ((first, axis[0]), (last, axis[1]), ((first + last) / 2, sum(axis) / 2)):
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{frame.bottom + 16}" text-anchor="middle">'
            f"{escape(number(value))}</text>"
        )
    parts.append(_legend(frame, _distribution_legend(current is not None)))
    parts.append("</svg>")
    return Markup("".join(parts))


def _hbars(
    names: Sequence[str], base: np.ndarray, current: np.ndarray | None, *, title: str
) -> Markup:
    """Horizontal bars, one row per category: its name left, baseline and window bars."""
    row = 22
    label_width = 200
    height = PAD_TOP + row * max(len(names), 1) + 8
    top = float(max(base.max(initial=0), 0 if current is None else current.max(initial=0)))
    scale = (WIDTH - label_width - 70) / (top if top > 0 else 1.0)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>',
        f'<text class="chart-title" x="4" y="16">{escape(title)}</text>',
    ]
    for index, name in enumerate(names):
        y = PAD_TOP + index * row
        shown = name if len(name) <= 28 else name[:27] + "…"
        tip = f"{name}: baseline {percent(float(base[index]))}"
        if current is not None:
            tip += f", window {percent(float(current[index]))}"
        parts.append(
            f'<g><title>{escape(tip)}</title><text class="category" x="{label_width - 6}" '
            f'y="{y + 14}" text-anchor="end">{escape(shown)}</text>'
        )
        width = float(base[index]) * scale
        parts.append(
            f'<rect class="bar baseline" x="{label_width}" y="{y + 2}" width="{width:.1f}" '
            f'height="{8 if current is not None else 16}"/>'
        )
        value = float(base[index])
        if current is not None:
            value = float(current[index])
            parts.append(
                f'<rect class="bar current" x="{label_width}" y="{y + 10}" '
                f'width="{value * scale:.1f}" height="8"/>'
            )
        parts.append(
            f'<text class="tick" x="{label_width + value * scale + 4:.1f}" y="{y + 16}">'
            f"{escape(percent(value))}</text></g>"
        )
    legend_frame = _Frame(WIDTH, height, 0, 1, 0, 1)
    parts.append(_legend(legend_frame, _distribution_legend(current is not None)))
    parts.append("</svg>")
    return Markup("".join(parts))


def _distribution_legend(with_current: bool) -> list[Series]:
    legend = [Series("baseline (training)", (), "baseline")]
    return [*legend, Series("this window", (), "current")] if with_current else legend


def _shares(counts: Sequence[float]) -> np.ndarray:
    array = np.asarray(counts, dtype=np.float64)
    total = array.sum()
    return array / total if total > 0 else array


def _overlap(inner: np.ndarray, display: np.ndarray) -> np.ndarray:
    """(fine bins x display bins): the share of each fine bin inside each display bin."""
    lo, hi = inner[:-1, None], inner[1:, None]
    width = np.maximum(hi - lo, 1e-300)
    covered = np.minimum(hi, display[None, 1:]) - np.maximum(lo, display[None, :-1])
    result: np.ndarray = np.clip(covered, 0.0, None) / width
    return result


def _range_label(low: float, high: float) -> str:
    if not math.isfinite(low):
        return f"below {number(high)}"
    if not math.isfinite(high):
        return f"{number(low)} and above"
    return f"{number(low)} to {number(high)}"


# ---- small pieces ------------------------------------------------------------------------
def sparkline(
    points: Sequence[tuple[float, float | None]],
    *,
    threshold: float | None = None,
    marked: Sequence[bool] = (),
    title: str = "",
) -> Markup:
    """A 140 x 30 line for a table cell; points over `threshold` are marked."""
    width, height = 140, 30
    values = [v for _, v in points if v is not None]
    if not values:
        return Markup('<span class="muted">–</span>')
    top = max([*values, threshold or 0.0]) or 1.0
    count = len(points)

    def x(index: int) -> float:
        return 3 + (width - 6) * (index / (count - 1) if count > 1 else 0.5)

    def y(value: float) -> float:
        return height - 3 - (height - 6) * value / top

    parts = [
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>'
    ]
    if threshold is not None:
        parts.append(
            f'<line class="threshold" x1="0" x2="{width}" y1="{y(threshold):.1f}" '
            f'y2="{y(threshold):.1f}"/>'
        )
    path = " ".join(
        f"{'M' if i == 0 else 'L'}{x(i):.1f} {y(v):.1f}"
        for i, (_, v) in enumerate(points)
        if v is not None
    )
    parts.append(f'<path class="line s0" d="{path}"/>')
    for index, (moment, value) in enumerate(points):
        if value is None:
            continue
        css = "dot alarm" if index < len(marked) and marked[index] else "dot s0"
        parts.append(
            f'<circle class="{css}" cx="{x(index):.1f}" cy="{y(value):.1f}" r="2">'
            f"<title>{escape(number(value))} at {escape(when(moment))}</title></circle>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


@dataclass(frozen=True)
class Period:
    """A stretch during which `version` was champion (`until` None: still is)."""

    version: int
    since: float
    until: float | None


@dataclass(frozen=True)
class Mark:
    """A deployment event on the timeline."""

    ts: float
    version: int
    action: str
    text: str


def timeline(periods: Sequence[Period], marks: Sequence[Mark], *, now: float) -> Markup:
    """One lane per version: a bar while it was champion, a marker per event."""
    versions = sorted({p.version for p in periods} | {m.version for m in marks}, reverse=True)
    if not versions:
        return Markup('<p class="muted">No deployment events recorded yet.</p>')
    moments = [p.since for p in periods] + [m.ts for m in marks]
    t0, t1 = min(moments), max([*moments, now])
    pad = max((t1 - t0) * 0.03, 60.0)
    lane = 24
    height = PAD_TOP + lane * len(versions) + PAD_BOTTOM
    frame = _Frame(WIDTH, height, t0 - pad, t1 + pad, 0.0, 1.0)
    parts = [_open(frame, "Deployment timeline (champion periods and events)")]
    parts += _time_axis(frame)
    for index, version in enumerate(versions):
        y = PAD_TOP + index * lane
        parts.append(
            f'<text class="tick" x="{frame.left - 6}" y="{y + 15}" text-anchor="end">'
            f"v{version}</text>"
        )
        for period in (p for p in periods if p.version == version):
            end = now if period.until is None else period.until
            tip = f"v{version} champion from {when(period.since)} to " + (
                "now" if period.until is None else when(period.until)
            )
            parts.append(_rect("period", frame.x(period.since), max(frame.x(end),
                               frame.x(period.since) + 2), y + 4, y + lane - 4, tip))  # fmt: skip
        for mark in (m for m in marks if m.version == version):
            cx = frame.x(mark.ts)
            parts.append(
                f'<circle class="event {escape(_css_word(mark.action))}" cx="{cx:.1f}" '
                f'cy="{y + lane / 2:.1f}" r="5"><title>{escape(mark.text)}</title></circle>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def _css_word(text: str) -> str:
    return "".join(c for c in text if c.isalnum() or c in "_-")


# ---- frame, axes, ticks ------------------------------------------------------------------
@dataclass(frozen=True)
class _Frame:
    width: int
    height: int
    t0: float
    t1: float
    v0: float
    v1: float

    @property
    def left(self) -> int:
        return PAD_LEFT

    @property
    def right(self) -> int:
        return self.width - PAD_RIGHT

    @property
    def top(self) -> int:
        return PAD_TOP

    @property
    def bottom(self) -> int:
        return self.height - PAD_BOTTOM

    def x(self, moment: float) -> float:
        span = self.t1 - self.t0 or 1.0
        return self.left + (self.right - self.left) * (moment - self.t0) / span

    def y(self, value: float) -> float:
        span = self.v1 - self.v0 or 1.0
        return self.bottom - (self.bottom - self.top) * (value - self.v0) / span


def _open(frame: _Frame, title: str) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {frame.width} {frame.height}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
        f'<text class="chart-title" x="4" y="16">{escape(title)}</text>'
    )


def _y_axis(frame: _Frame, ticks: Sequence[float], label: Callable[[float], str]) -> list[str]:
    parts = []
    for value in ticks:
        y = frame.y(value)
        parts.append(
            f'<line class="grid" x1="{frame.left}" x2="{frame.right}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{frame.left - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(label(value))}</text>"
        )
    return parts


def _time_axis(frame: _Frame) -> list[str]:
    span = frame.t1 - frame.t0
    step, pattern = next(
        ((s, p) for s, p in _TIME_STEPS if span / s <= 7), (span / 6 or 1.0, "%Y-%m-%d")
    )
    first = math.ceil(frame.t0 / step) * step
    parts = [
        f'<line class="axis" x1="{frame.left}" x2="{frame.right}" y1="{frame.bottom}" '
        f'y2="{frame.bottom}"/>'
    ]
    moment = first
    while moment <= frame.t1:
        x = frame.x(moment)
        text = datetime.fromtimestamp(moment, UTC).strftime(pattern)
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{frame.bottom + 16}" text-anchor="middle">'
            f"{escape(text)}</text>"
        )
        moment += step
    return parts


def _legend(frame: _Frame, series: Sequence[Series]) -> str:
    parts = []
    x = float(frame.right)
    for item in reversed(series):
        width = 26 + 6.5 * len(item.name)
        x -= width
        parts.append(
            f'<rect class="swatch {item.css}" x="{x:.0f}" y="7" width="10" height="10"/>'
            f'<text class="legend" x="{x + 14:.0f}" y="16">{escape(item.name)}</text>'
        )
    return "".join(parts)


def _rect(css: str, x0: float, x1: float, y0: float, y1: float, tip: str) -> str:
    top, bottom = min(y0, y1), max(y0, y1)
    return (
        f'<rect class="{css}" x="{x0:.1f}" y="{top:.1f}" width="{max(x1 - x0, 0):.1f}" '
        f'height="{bottom - top:.1f}"><title>{escape(tip)}</title></rect>'
    )


def _bar(css: str, x0: float, x1: float, y0: float, y1: float) -> str:
    top, bottom = min(y0, y1), max(y0, y1)
    return (
        f'<rect class="bar {css}" x="{x0:.1f}" y="{top:.1f}" width="{max(x1 - x0, 0):.1f}" '
        f'height="{bottom - top:.1f}"/>'
    )


def _empty(frame: _Frame, text: str) -> str:
    return (
        f'<text class="empty" x="{(frame.left + frame.right) / 2:.0f}" '
        f'y="{(frame.top + frame.bottom) / 2:.0f}" text-anchor="middle">{escape(text)}</text>'
    )


def nice_ticks(low: float, high: float, count: int = 4) -> list[float]:
    """Round tick values covering [low, high]: steps of 1, 2 or 5 times a power of ten."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        high = low + 1.0
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    start = math.floor(low / step) * step
    ticks = [start]
    while ticks[-1] < high - step * 1e-9:
        ticks.append(ticks[-1] + step)
    return [round(t, 12) for t in ticks]
