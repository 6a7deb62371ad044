"""``mlkeel report`` writes one self-contained file that opens offline in Chromium with its
charts; ``mlkeel dashboard`` serves the pages alone."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from cdp_browser import chromium
from dashboard_site import EVIL_CATEGORY, EVIL_FEATURE, MODEL, Site, build_site

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, mlflow_store: Path) -> Site:
    return build_site(tmp_path_factory.mktemp("report"), mlflow_store)


def test_report_is_one_file_that_opens_offline_with_its_charts(site: Site, tmp_path: Path) -> None:
    out = tmp_path / "out" / "report.html"
    command = [sys.executable, "-m", "mlkeel", "report", "-p", str(site.project),
               "--model", MODEL, "--window", "7d", "--out", str(out)]  # fmt: skip

    result = subprocess.run(command, capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stderr
    html = out.read_text()
    assert not re.search(r"<script|<link|(src|href)=[\"']?(https?:|//)", html)
    assert "<style>" in html
    with chromium(tmp_path) as browser:
        browser.offline()
        load = browser.open(out.as_uri())
        browser.screenshot(tmp_path / "report.png")
        charts = browser.evaluate("document.querySelectorAll('svg.chart').length")
        text = browser.evaluate("document.body.textContent")
        styled = browser.evaluate(
            "getComputedStyle(document.querySelector('header.top')).backgroundColor"
        )
        font = browser.evaluate("getComputedStyle(document.body).fontFamily")

    assert load.problems == []
    assert charts > 30
    expected = [MODEL, EVIL_FEATURE, EVIL_CATEGORY, "Predictions per hour", "v1", "Alerts"]
    assert [t for t in expected if t not in text] == []
    assert styled == "rgb(17, 24, 39)"  # the inline stylesheet applied
    assert "Segoe UI" in font  # ... whole: its quotes were not escaped into entities


def test_report_names_a_bad_model_and_exits_2(site: Site, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "mlkeel", "report", "-p", str(site.project),
               "--model", "nope", "--out", str(tmp_path / "r.html")]  # fmt: skip

    result = subprocess.run(command, capture_output=True, text=True, timeout=120)

    assert result.returncode == 2
    assert "nope" in result.stderr
    assert not (tmp_path / "r.html").exists()


def test_dashboard_command_serves_the_pages_alone(site: Site) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "mlkeel", "dashboard", "-p", str(site.project), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        page = _first_answer(f"http://127.0.0.1:{port}/", deadline=time.monotonic() + 60)
        predict = httpx.post(f"http://127.0.0.1:{port}/v1/models/{MODEL}/predict", json={})
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=20)

    assert page.status_code == 200
    assert str(page.url).endswith("/dashboard")
    assert MODEL in page.text
    assert predict.status_code == 404  # the dashboard alone serves no model


def _first_answer(url: str, deadline: float) -> httpx.Response:
    while True:
        try:
            return httpx.get(url, follow_redirects=True, timeout=30)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
