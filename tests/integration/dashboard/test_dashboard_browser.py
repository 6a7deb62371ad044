"""The dashboard in a real headless Chromium, served by the model server itself: every page
loads with no console error and draws its charts, links lead somewhere, and strings users
control (a feature name, a category logged through the API, alert text) show as text."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from cdp_browser import Browser
from dashboard_site import EVIL_CATEGORY, EVIL_FEATURE, MODEL, SHIFTED, Site

pytestmark = pytest.mark.timeout(300)

PAGES = {
    "overview": "/dashboard",
    "model": f"/dashboard/models/{MODEL}",
    "monitoring": f"/dashboard/models/{MODEL}/monitoring?window=7d",
    "alerts": "/dashboard/alerts?status=all",
    "jobs": "/dashboard/jobs",
}
# Per page: texts it must show, and the least number of charts (svg) it must draw.
EXPECTED = {
    "overview": ([MODEL, "champion", "v1", "v2", "alerting", "blocked"], 1),
    "model": ([MODEL, "v1", "v2", "champion", "promoted", "blocked", "roc_auc"], 1),
    "monitoring": (
        [
            MODEL,
            "Predictions per hour",
            "Latency per hour",
            "mean_radius",
            "worst_area",
            "Live roc_auc",
            EVIL_FEATURE,
        ],
        30,
    ),  # fmt: skip
    "alerts": ([MODEL, "feature_drift", "unseen_rate", "performance_drop"], 0),
    "jobs": ([MODEL, "Retraining runs", "Monitoring runs", "blocked"], 0),
}
TITLES = {
    "overview": "mlkeel · overview",
    "model": f"mlkeel · {MODEL}",
    "monitoring": f"mlkeel · {MODEL} · monitoring",
    "alerts": "mlkeel · alerts",
    "jobs": "mlkeel · jobs",
}
DRAWN = "svg.chart rect, svg.chart path, svg.chart circle, svg.spark path"


@pytest.mark.parametrize("page", list(PAGES))
def test_page_loads_without_console_errors_and_draws_its_charts(
    page: str, base_url: str, browser: Browser, artifacts: Path
) -> None:
    load = browser.open(base_url + PAGES[page])
    browser.screenshot(artifacts / f"{page}.png")

    assert load.status == 200
    assert load.problems == []
    assert browser.evaluate("document.title") == TITLES[page]
    text = browser.evaluate("document.body.innerText")
    texts, charts = EXPECTED[page]
    assert [t for t in texts if t not in text] == []
    assert browser.evaluate("document.querySelectorAll('svg').length") >= charts
    if charts:
        assert browser.evaluate(f"document.querySelectorAll({DRAWN!r}).length") >= charts


def test_monitoring_page_shows_the_shifted_features_drifted_first(
    base_url: str, browser: Browser
) -> None:
    browser.open(base_url + PAGES["monitoring"])

    drifted = browser.evaluate(
        "[...document.querySelectorAll('table.drift tr.drifted td.feature-name')]"
        ".map(e => e.innerText)"
    )
    assert set(drifted) == {*SHIFTED, EVIL_FEATURE}
    histograms = browser.evaluate(
        "document.querySelectorAll('.features svg.chart rect.bar.current').length"
    )
    assert histograms > 30 * 20  # every numeric feature: ~32 window bars over the baseline's


def test_links_between_pages_work(base_url: str, browser: Browser) -> None:
    browser.open(base_url + PAGES["overview"])

    model = browser.click(f'section.card h2 a[href="/dashboard/models/{MODEL}"]')
    assert model.status == 200
    assert browser.evaluate("document.title") == TITLES["model"]
    monitoring = browser.click(f'nav.tabs a[href="/dashboard/models/{MODEL}/monitoring"]')
    assert monitoring.status == 200
    assert monitoring.problems == []
    assert browser.evaluate("document.title") == TITLES["monitoring"]
    jobs = browser.click('header nav a[href="/dashboard/jobs"]')
    assert (jobs.status, jobs.problems) == (200, [])

    hrefs: set[str] = set()
    for path in PAGES.values():
        browser.open(base_url + path)
        hrefs.update(browser.evaluate("[...document.links].map(a => a.href)"))
    with httpx.Client(timeout=60) as client:
        broken = {href: client.get(href).status_code for href in sorted(hrefs)}
    assert {href: status for href, status in broken.items() if status != 200} == {}


@pytest.mark.parametrize("page", ["overview", "monitoring", "alerts", "model"])
def test_user_strings_show_as_text_and_nothing_executes(
    page: str, base_url: str, browser: Browser
) -> None:
    load = browser.open(base_url + PAGES[page])

    assert load.problems == []  # an injected script would be a CSP violation or a dialog
    assert browser.evaluate("document.title") == TITLES[page]
    assert browser.evaluate("document.querySelectorAll('script, img, iframe').length") == 0
    shown = browser.evaluate("document.body.textContent")
    if page != "model":
        assert EVIL_FEATURE in shown  # in the drift table, the charts' titles, alert text
    if page in ("monitoring", "model"):
        assert EVIL_CATEGORY in shown  # the logged category; the gate's text on the model page


def test_pages_forbid_scripts_and_unknown_things_answer_404_or_400(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=60) as client:
        page = client.get(PAGES["monitoring"])
        missing = client.get("/dashboard/models/" + quote("<b>nope", safe=""))
        bad_window = client.get(f"/dashboard/models/{MODEL}/monitoring?window=forever")
        css = client.get("/dashboard/static/dashboard.css")

    assert "script-src" not in page.headers["content-security-policy"]
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert not re.search(r"<script|https?://", page.text)
    assert missing.status_code == 404
    assert "&#39;&lt;b&gt;nope&#39;" in missing.text
    assert bad_window.status_code == 400
    assert css.headers["content-type"].startswith("text/css")


def test_served_without_a_prediction_log_the_dashboard_reads_the_database_itself(
    site: Site,
) -> None:
    from mlkeel.serving.app import create_app
    from mlkeel.serving.background import BackgroundServer

    server = BackgroundServer(create_app(site.settings, site.registry)).start()
    try:
        page = httpx.get(server.url + PAGES["monitoring"], timeout=60)
    finally:
        server.stop()

    assert page.status_code == 200
    assert "mean_radius" in page.text
