"""The headless-Chromium page check: real plotly pages, real errors, charts that do not draw."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from engine.results.browser import find_chromium, render_page

UNDRAWN_TIMEOUT_S = 8.0  # an undrawn chart waits out the whole timeout; long enough for a slow CI load


def _figures():
    """One figure per kind the report draws: a fan (scatter + filled band, float32 data, which
    plotly.py ships base64-encoded), bar, heatmap, histogram, box from precomputed quartiles and a
    table."""
    import plotly.graph_objects as go

    rng = np.random.default_rng(7)
    day = np.arange(30, dtype=np.float32)
    fan = go.Figure([
        go.Scatter(x0=0, dx=1, y=100 + day, line={"width": 0}, showlegend=False),
        go.Scatter(x0=0, dx=1, y=100 - day, fill="tonexty", line={"width": 0}, name="5-95%"),
        go.Scatter(x0=0, dx=1, y=100 + 0 * day, name="median"),
    ])
    return {
        "fan": fan,
        "bar": go.Figure(go.Bar(x=["binance", "bybit", "okx"], y=[3.1, 1.2, 2.4])),
        "heatmap": go.Figure(go.Heatmap(z=rng.random((8, 12)))),
        "histogram": go.Figure(go.Histogram(x=rng.normal(size=500))),
        "box": go.Figure(go.Box(y=["hedged"], q1=[-2.0], median=[-1.0], q3=[0.5], lowerfence=[-5.0],
                                upperfence=[2.0], orientation="h")),
        "table": go.Figure(go.Table(header={"values": ["metric", "value"]},
                                    cells={"values": [["paths", "bad debt"], [64, 0.0]]})),
    }


def _report(path, plotly_io, figures: dict, title="Report", wrap=None):
    """Several charts in one self-contained page, plotly.js inlined once, like the real report.

    ``wrap`` maps a chart id to an HTML template with ``{}`` for the chart (a hidden tab, say).
    """
    parts = []
    for i, (chart_id, figure) in enumerate(figures.items()):
        html = plotly_io.to_html(figure, include_plotlyjs=i == 0, full_html=False, div_id=chart_id)
        parts.append((wrap or {}).get(chart_id, "{}").replace("{}", html))
    path.write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head>"
                    f"<body>{''.join(parts)}</body></html>", encoding="utf-8")
    return path


def _single(path, plotly_io, script: str):
    """One bar chart via ``write_html`` (plotly.js inlined) with ``script`` appended to the body."""
    import plotly.graph_objects as go

    plotly_io.write_html(go.Figure(go.Bar(x=[1, 2], y=[3, 4])), path, include_plotlyjs=True,
                         full_html=True, div_id="bars")
    html = path.read_text(encoding="utf-8")
    path.write_text(html.replace("</body>", f"<script>{script}</script></body>"), encoding="utf-8")
    return path


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.mark.slow
def test_report_with_every_chart_kind_draws(chromium, plotly_io, tmp_path):
    page = _report(tmp_path / "report.html", plotly_io, _figures(), title="Cascade report")
    check = render_page(page, tmp_path / "report.png", width=1200, height=800)

    assert check.ok, (check.errors, check.undrawn_reasons)
    assert (check.charts, check.charts_drawn, check.undrawn) == (6, 6, ())
    assert check.title == "Cascade report"
    assert check.screenshot == tmp_path / "report.png"
    width, height = _png_size(check.screenshot)
    assert width == 1200
    assert height > 6 * 400, "the screenshot should hold the whole page, not just the viewport"
    assert check.screenshot.stat().st_size > 20_000, "a blank page compresses far smaller"


@pytest.mark.slow
@pytest.mark.parametrize(("script", "expected"), [
    ("function explode() { throw new Error('deliberate failure'); } explode();",
     "uncaught: Error: deliberate failure"),
    ("Promise.reject(new Error('deliberate rejection'));", "deliberate rejection"),
    ("console.error('deliberate console error', 42);", "console.error: deliberate console error 42"),
    ("console.assert(1 === 2, 'deliberate assertion');", "console.assert: deliberate assertion"),
    ("document.body.appendChild(Object.assign(document.createElement('img'), {src: 'missing.png'}));",
     "missing.png"),
], ids=["uncaught", "rejection", "console-error", "console-assert", "missing-file"])
def test_page_errors_are_reported(chromium, plotly_io, tmp_path, script, expected):
    check = render_page(_single(tmp_path / "page.html", plotly_io, script))

    assert not check.ok
    assert any(expected in error for error in check.errors), check.errors
    assert (check.charts, check.charts_drawn) == (1, 1), "the chart itself still drew"


@pytest.mark.slow
def test_chart_in_a_hidden_tab_is_undrawn(chromium, plotly_io, tmp_path):
    figures = _figures()
    wrap = {"heatmap": "<div class='tab' style='display:none'>{}</div>"}
    page = _report(tmp_path / "report.html", plotly_io, {"fan": figures["fan"], "heatmap": figures["heatmap"]},
                   wrap=wrap)
    check = render_page(page, timeout=UNDRAWN_TIMEOUT_S)

    assert check.errors == ()
    assert (check.charts, check.charts_drawn, check.undrawn) == (2, 1, ("heatmap",))
    assert "zero size" in check.undrawn_reasons[0]
    assert not check.ok


@pytest.mark.slow
def test_chart_without_plotly_js_is_undrawn_and_the_error_named(chromium, plotly_io, tmp_path):
    page = tmp_path / "page.html"  # plotly.js neither inlined nor reachable: the placeholder stays empty
    plotly_io.write_html(_figures()["bar"], page, include_plotlyjs=False, full_html=True, div_id="bars")
    check = render_page(page, timeout=UNDRAWN_TIMEOUT_S)

    assert check.undrawn == ("bars",) and check.charts_drawn == 0
    assert check.undrawn_reasons == ("bars: never plotted",)
    assert any("Plotly is not defined" in error for error in check.errors), check.errors


def test_find_chromium_honours_the_override(monkeypatch):
    monkeypatch.setenv("CASCADE_CHROMIUM", "/opt/custom/chrome")
    assert find_chromium() == "/opt/custom/chrome"


@pytest.mark.slow
@pytest.mark.parametrize(("behaviour", "expected"), [
    ("exit 3", "Chromium exited"),
    ("exec sleep 30", "no answer from Chromium"),
], ids=["crashes", "hangs"])
def test_a_broken_browser_raises_with_its_stderr(monkeypatch, tmp_path, behaviour, expected):
    fake = tmp_path / "fake-chromium"
    fake.write_text(f"#!/bin/sh\necho 'fake browser says no' >&2\n{behaviour}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CASCADE_CHROMIUM", str(fake))
    page = tmp_path / "page.html"
    page.write_text("<html></html>")

    with pytest.raises(RuntimeError, match=expected) as raised:
        render_page(page, timeout=1.0)
    assert "fake browser says no" in str(raised.value)


def test_a_missing_page_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.html"):
        render_page(tmp_path / "nowhere.html")
