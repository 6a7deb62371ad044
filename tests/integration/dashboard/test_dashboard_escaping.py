"""Names the project cannot configure (a registry-only model) still render as text: the
templates autoescape, and chart labels are escaped as they are drawn."""

from __future__ import annotations

from mlkeel.dashboard import charts
from mlkeel.dashboard.charts import Bins, Series
from mlkeel.dashboard.render import render

EVIL = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def test_overview_escapes_a_model_name_and_alert_text() -> None:
    card = {
        "name": EVIL, "aliases": {"champion": 1}, "latest": 1, "problem": EVIL,
        "status": "alerting", "report": None, "report_created": None, "drifted": [],
        "alerts": [], "rows_24h": 0, "volume": charts.sparkline([], title=EVIL),
        "last_run": None, "jobs": [],
    }  # fmt: skip

    html = render("overview.html", page="overview", cards=[card], open_alerts=[], now=0.0)

    assert EVIL not in html
    assert ESCAPED in html
    assert "/dashboard/models/%3Cscript%3Ealert%281%29%3C/script%3E" in html


def test_charts_escape_series_names_categories_and_titles() -> None:
    drawn = [
        charts.time_chart([Series(EVIL, [(0.0, 1.0), (3600.0, 2.0)])], title=EVIL),
        charts.category_bars([EVIL, "Oslo"], [1.0, 2.0], [2.0, 1.0], title=EVIL),
        charts.histogram(
            Bins([float("-inf"), 1.0, 2.0, 3.0, float("inf")], [1, 2, 3, 4], [4, 3, 2, 1]),
            title=EVIL,
            low=0.0,
            high=4.0,
        ),  # fmt: skip
        charts.sparkline([(0.0, 0.5), (1.0, 0.2)], threshold=0.3, title=EVIL),
    ]

    for svg in drawn:
        assert "<script" not in svg
        assert ESCAPED in svg


def test_nice_ticks_cover_the_range_with_round_steps() -> None:
    assert charts.nice_ticks(0, 0.87) == [0, 0.25, 0.5, 0.75, 1.0]
    assert charts.nice_ticks(0, 480) == [0, 200, 400, 600]
    assert charts.nice_ticks(5, 5) == [5, 5.25, 5.5, 5.75, 6.0]


def test_numbers_read_short() -> None:
    assert [charts.number(v) for v in (992_000, 12_345, 2_500_000, 480, 0.01234)] == [
        "992k", "12.3k", "2.5M", "480", "0.0123",
    ]  # fmt: skip
