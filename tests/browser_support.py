"""Headless Chromium for the report page's tests: Debian's `chromium`, driven by Playwright.

Playwright cannot download its own browser here, so it launches the system's `chromium`
(`.ci/run` installs the Debian package when it is missing). Without the background
networking flags Chromium keeps calling hosts (component updates, sync, QUIC probes) that a
closed network refuses. Where there is no chromium or no playwright, the tests that need
them are skipped with the reason, and every other test still runs.

Pages are opened from disk in a context that is offline and aborts every request but the
page's own file, and that records each request and every console error, so a test can
assert that the page fetched nothing and logged no error.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
)


def why_no_browser() -> str | None:
    """None when Playwright and Debian's chromium are both here, else what is missing."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (it is in the dev extra: pip install -e '.[dev]')"
    if shutil.which("chromium") is None:
        return "no chromium on PATH (apt-get install chromium; .ci/run installs it)"
    return None


def needs_browser() -> pytest.MarkDecorator:
    reason = why_no_browser()
    return pytest.mark.skipif(reason is not None, reason=reason or "")


@contextmanager
def chromium() -> Iterator[Any]:
    """One headless browser (start it once per test module: it takes a second or two)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=shutil.which("chromium"), args=list(CHROMIUM_FLAGS)
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Visit:
    """A page opened from disk, with what it asked the network for and what it logged."""

    page: Any
    url: str
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@contextmanager
def open_offline(browser: Any, path: Path, width: int, height: int = 900) -> Iterator[Visit]:
    """Open `path` at `width` pixels with the network off and every other request aborted;
    returns once every chart has been drawn."""
    url = path.resolve().as_uri()
    context = browser.new_context(
        viewport={"width": width, "height": height}, offline=True, service_workers="block"
    )
    visit = Visit(page=None, url=url)

    def only_the_file(route: Any) -> None:
        if route.request.url == url:
            route.continue_()
        else:
            route.abort()

    context.route("**/*", only_the_file)
    page = context.new_page()
    page.on("request", lambda request: visit.requests.append(request.url))
    page.on("console", lambda message: _keep_error(visit, message))
    page.on("pageerror", lambda error: visit.errors.append(f"page error: {error}"))
    visit.page = page
    try:
        page.goto(url)
        expected = int(page.get_attribute("main", "data-figures") or 0)
        page.wait_for_function(
            "n => document.querySelectorAll('.js-plotly-plot .main-svg').length >= n",
            arg=expected,
        )
        yield visit
    finally:
        context.close()


def _keep_error(visit: Visit, message: Any) -> None:
    if message.type == "error":
        visit.errors.append(message.text)


def drawn_charts(page: Any) -> int:
    """Charts that plotly has drawn: a figure element with its SVG and at least one trace."""
    return int(
        page.evaluate(
            """() => Array.from(document.querySelectorAll('.js-plotly-plot')).filter(
                gd => gd.querySelector('.main-svg') && gd._fullData && gd._fullData.length > 0
            ).length"""
        )
    )


def hover_point(page: Any, div_id: str, trace: int, point: int) -> None:
    """Move the mouse onto one point of a scatter trace (plotly hovers on mouse moves over
    the plot area, not on the marker element itself)."""
    box = page.evaluate(
        """([id, trace, point]) => {
            const gd = document.getElementById(id);
            const layout = gd._fullLayout;
            const x = gd._fullData[trace].x[point], y = gd._fullData[trace].y[point];
            const area = gd.querySelector('.nsewdrag').getBoundingClientRect();
            return {x: area.left + layout.xaxis.l2p(x), y: area.top + layout.yaxis.l2p(y)};
        }""",
        [div_id, trace, point],
    )
    page.mouse.move(box["x"] - 30, box["y"] - 30)
    page.mouse.move(box["x"], box["y"], steps=4)


def not_blank(png: Path) -> bool:
    """A screenshot that shows something: many colours, not one flat fill."""
    from PIL import Image

    with Image.open(png) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    return colours is None or len(colours) > 50
