"""Render an HTML report in a real headless Chromium and say whether it worked.

Dependency-free: the browser is driven over the Chrome DevTools Protocol (CDP) through
``--remote-debugging-pipe``, so no websocket library is needed. Chromium reads commands from
its fd 3 and writes responses and events to its fd 4, one JSON message per NUL-terminated chunk.
In the child, between fork and exec, ``preexec_fn`` ``dup2``s our pipe ends onto 3 and 4.
(``pass_fds`` alone cannot renumber fds and would close 3 and 4 after ``preexec_fn``; a
``sh -c`` trampoline fails as dash takes only one-digit fds. ``close_fds=False`` is safe:
Python opens every fd non-inheritable, PEP 446, so only the two copies reach the browser.)

What counts as an error (:attr:`PageCheck.errors`): uncaught exceptions and unhandled promise
rejections (``Runtime.exceptionThrown``), ``console.error`` / failed ``console.assert``
(``Runtime.consoleAPICalled``), and browser log entries of level ``error`` (``Log.entryAdded``:
a missing file, a blocked resource). One exception: a missing ``favicon.ico``, which a page
never asked for and which says nothing about the report. Warnings are not errors.

What counts as a chart: an element with class ``js-plotly-plot`` (Plotly tags every div it plots)
or ``plotly-graph-div`` (plotly.py's placeholder div, so a chart whose ``newPlot`` never ran,
because plotly.js failed to load or the script threw first, still counts and is reported
undrawn). A chart is drawn when it has ``_fullLayout`` (Plotly plotted it), its ``.main-svg``
has a non-zero on-screen size (so not inside a ``display:none`` tab or a zero-height box), and
at least one data mark has a non-zero on-screen box; see ``_MARKS``. WebGL traces (``scattergl``,
3-D) draw into a canvas and are not recognised; a figure without traces is reported undrawn.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PageCheck", "find_chromium", "render_page"]

_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_POLL_S = 0.1
_GRACE_S = 20.0  # for the screenshot after the chart wait, which may have used all of `timeout`
_MAX_HEIGHT_PX = 16_000  # Chromium cannot capture much beyond 16k pixels in one bitmap

# One selector per kind of data mark Plotly draws in SVG: scatter lines, fan fills and
# markers; bars (bar and histogram draw `g.point > path`); heatmap (one raster <image>) and
# contour paths; box and violin outlines; pie and donut slices; table cells.
_MARKS = (
    ".scatterlayer path.js-line, .scatterlayer path.js-fill, .scatterlayer path.point, "
    ".barlayer path, .heatmaplayer image, .contourlayer path, "
    ".boxlayer path, .violinlayer path, .pielayer path.surface, .table .cell-rect"
)
_CHECK_JS = """(() => {
  const sized = el => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  const marked = el => { const r = el.getBoundingClientRect(); return r.width > 0 || r.height > 0; };
  const charts = [...document.querySelectorAll('.js-plotly-plot, .plotly-graph-div')];
  return {title: document.title, charts: charts.map((gd, i) => {
    const svg = gd.querySelector('.main-svg');
    let why = '';
    if (!gd._fullLayout) why = 'never plotted';
    else if (!svg || !sized(svg)) why = 'zero size (hidden or collapsed container)';
    else if (![...gd.querySelectorAll(MARKS)].some(marked)) why = 'no trace drawn';
    return {id: gd.id || ('chart #' + i), why};
  })};
})()""".replace("MARKS", json.dumps(_MARKS))


def find_chromium() -> str | None:
    """``$CASCADE_CHROMIUM`` if set, else the first Chromium or Chrome found on ``PATH``."""
    found = (shutil.which(name) for name in _CANDIDATES)
    return os.environ.get("CASCADE_CHROMIUM") or next((path for path in found if path), None)


@dataclass(frozen=True)
class PageCheck:
    """What the browser saw: errors, how many charts drew, the title and the screenshot."""

    errors: tuple[str, ...]
    charts: int
    charts_drawn: int
    undrawn: tuple[str, ...]
    """Ids of the charts that did not draw."""
    undrawn_reasons: tuple[str, ...]
    """``"id: why"`` for each undrawn chart, in the same order."""
    title: str
    screenshot: Path | None
    seconds: float
    """Wall time from launching the browser to closing it."""

    @property
    def ok(self) -> bool:
        return not self.errors and self.charts == self.charts_drawn


class _Browser:
    """One Chromium process and its CDP pipe; events are sorted into ``errors`` as they arrive."""

    def __init__(self, executable: str, profile: Path, log, width: int, height: int):
        to_browser, self._browser_in = os.pipe()
        self._browser_out, from_browser = os.pipe()
        # Copies at 10 and above: neither can be 3 or 4, so the first dup2 cannot clobber the other.
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_browser, from_browser)]
        os.close(to_browser)
        os.close(from_browser)

        def wire_fds() -> None:  # in the child: two dup2 calls, no lock another thread could hold
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        args = [executable, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--hide-scrollbars", "--remote-debugging-pipe", f"--user-data-dir={profile}",
                f"--window-size={width},{height}", "--mute-audio", "--disable-extensions",
                "--disable-dev-shm-usage",  # containers give /dev/shm 64 MB; Chromium crashes
                "--disable-background-networking", "--disable-component-update", "about:blank"]
        try:
            self.process = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, close_fds=False,
                preexec_fn=wire_fds, start_new_session=True)  # noqa: PLW1509 (only dup2, see above)
        except BaseException:
            os.close(self._browser_in)
            os.close(self._browser_out)
            raise
        finally:
            for fd in high:
                os.close(fd)
        self._partial: list[bytes] = []  # the chunks of a message not yet ended by its NUL
        self._messages: collections.deque[bytes] = collections.deque()
        self._poll = select.poll()
        self._poll.register(self._browser_out, select.POLLIN)
        self._next_id, self.loaded = 0, False
        self.session: str | None = None
        self.errors: list[str] = []

    def close(self) -> None:
        """Stop the browser, then kill whatever is left of its process group; close the pipes.

        ``Browser.close`` first: Chromium then reaps its own renderers, which a bare SIGKILL
        would leave as zombies under a container's PID 1 that may not reap them.
        """
        if self.process.poll() is None:
            try:
                self.call("Browser.close", time.monotonic() + 2)
                self.process.wait(timeout=3)
            except (OSError, ValueError, RuntimeError, subprocess.TimeoutExpired):
                pass  # hung or already gone: the SIGKILL below settles it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        os.close(self._browser_in)
        os.close(self._browser_out)

    def call(self, method: str, deadline: float, **params) -> dict:
        """Send one command and return its result, handling the events that arrive meanwhile."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if self.session and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self.session
        try:
            os.write(self._browser_in, json.dumps(message).encode() + b"\0")
        except BrokenPipeError:  # it died before reading: say so as _receive does
            raise ConnectionError(f"Chromium exited (status {self.process.poll()}) "
                                  f"before it read {method}") from None
        while True:
            reply = self._receive(deadline, waiting_for=method)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"Chromium refused {method}: {reply['error'].get('message')}")
                return reply.get("result", {})

    def wait_loaded(self, deadline: float) -> None:
        while not self.loaded:
            self._receive(deadline, waiting_for="Page.loadEventFired")

    def _receive(self, deadline: float, waiting_for: str) -> dict:
        """The next message; chunks are joined only once a NUL ends one (screenshots run to MBs)."""
        while not self._messages:
            remaining_ms = max(deadline - time.monotonic(), 0) * 1000
            if not self._poll.poll(remaining_ms):
                raise TimeoutError(f"no answer from Chromium to {waiting_for}")
            chunk = os.read(self._browser_out, 1 << 20)
            if not chunk:
                raise ConnectionError(f"Chromium exited (status {self.process.poll()}) "
                                      f"while we waited for {waiting_for}")
            if b"\0" in chunk:
                *complete, rest = b"".join([*self._partial, chunk]).split(b"\0")
                self._messages.extend(complete)
                self._partial = [rest]
            else:
                self._partial.append(chunk)
        message = json.loads(self._messages.popleft())
        self._on_event(message.get("method"), message.get("params", {}))
        return message

    def _on_event(self, method: str | None, params: dict) -> None:
        if method == "Page.loadEventFired":
            self.loaded = True
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            thrown = details.get("exception", {})  # an Error has a description, `throw "x"` a value
            text = thrown.get("description") or str(thrown.get("value", details.get("text", "")))
            where = f"{Path(details.get('url', '')).name}:{details.get('lineNumber', -1) + 1}"
            self.errors.append(f"uncaught: {text.splitlines()[0] if text else '?'} ({where})")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            words = [str(a.get("value", a.get("description", ""))) for a in params.get("args", [])]
            self.errors.append(f"console.{params['type']}: {' '.join(words)}")
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            entry = params["entry"]
            if not entry.get("url", "").endswith("/favicon.ico"):
                self.errors.append(f"{entry.get('source', 'browser')}: {entry.get('text', '')} "
                                   f"{entry.get('url', '')}".rstrip())


def render_page(html_path, screenshot=None, *, width: int = 1400, height: int = 900,
                timeout: float = 60.0) -> PageCheck:
    """Load ``file://html_path`` in headless Chromium, wait for every Plotly chart, screenshot it.

    ``timeout`` bounds the launch, the page load and the wait for charts; charts still undrawn
    then are reported in the result, not raised. The full-page PNG (at most 16 000 px tall) is
    written to ``screenshot`` when given. Raises ``FileNotFoundError`` for a missing page and
    ``RuntimeError``, with the tail of Chromium's stderr, when the browser cannot be found,
    fails to start, crashes or does not load the page in time.
    """
    page = Path(html_path).resolve()
    if not page.is_file():
        raise FileNotFoundError(f"no HTML page at {page}")
    executable = find_chromium()
    if executable is None:
        raise RuntimeError("Chromium not found: install it (Debian: apt-get install chromium) "
                           "or point CASCADE_CHROMIUM at the executable")
    started = time.monotonic()
    deadline = started + timeout
    workdir = Path(tempfile.mkdtemp(prefix="cascade-chromium-"))
    log_path = workdir / "stderr.log"
    browser = None
    try:
        with open(log_path, "wb") as log:
            browser = _Browser(executable, workdir / "profile", log, width, height)
        try:
            target = browser.call("Target.createTarget", deadline, url="about:blank")
            browser.session = browser.call("Target.attachToTarget", deadline,
                                           targetId=target["targetId"], flatten=True)["sessionId"]
            for domain in ("Runtime", "Log", "Page"):
                browser.call(f"{domain}.enable", deadline)
            browser.call("Emulation.setDeviceMetricsOverride", deadline, width=width, height=height,
                         deviceScaleFactor=1, mobile=False)
            navigation = browser.call("Page.navigate", deadline, url=page.as_uri())
            if navigation.get("errorText"):
                raise RuntimeError(f"Chromium could not open {page}: {navigation['errorText']}")
            browser.wait_loaded(deadline)
            state = _wait_for_charts(browser, deadline)
            png = _capture(browser, time.monotonic() + _GRACE_S)
        except (TimeoutError, ConnectionError) as error:
            tail = log_path.read_text(errors="replace")[-2000:].strip() or "(empty)"
            raise RuntimeError(f"headless Chromium ({executable}) failed on {page} after "
                               f"{time.monotonic() - started:.1f} s: {error}\n"
                               f"Chromium stderr, last lines:\n{tail}") from error
    finally:
        if browser is not None:
            browser.close()
        shutil.rmtree(workdir, ignore_errors=True)
    if screenshot is not None:
        from .._atomic import write_bytes

        write_bytes(Path(screenshot), png)
    undrawn = [c for c in state["charts"] if c["why"]]
    return PageCheck(errors=tuple(browser.errors), charts=len(state["charts"]),
                     charts_drawn=len(state["charts"]) - len(undrawn),
                     undrawn=tuple(c["id"] for c in undrawn),
                     undrawn_reasons=tuple(f"{c['id']}: {c['why']}" for c in undrawn),
                     title=state["title"], screenshot=screenshot,
                     seconds=round(time.monotonic() - started, 3))


def _wait_for_charts(browser: _Browser, deadline: float) -> dict:
    """Poll the drawn-check until every chart has drawn or ``deadline`` passes; the last state."""
    while True:
        reply = browser.call("Runtime.evaluate", deadline + _GRACE_S, expression=_CHECK_JS,
                             returnByValue=True)
        if "exceptionDetails" in reply:
            raise RuntimeError(f"the chart check failed in the page: {reply['exceptionDetails']}")
        state = reply["result"]["value"]
        if all(not c["why"] for c in state["charts"]) or time.monotonic() >= deadline:
            return state
        time.sleep(_POLL_S)


def _capture(browser: _Browser, deadline: float) -> bytes:
    """A PNG of the whole page, beyond the viewport (full document height, capped)."""
    size = browser.call("Page.getLayoutMetrics", deadline)["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": max(size["width"], 1), "scale": 1,
            "height": min(max(size["height"], 1), _MAX_HEIGHT_PX)}
    shot = browser.call("Page.captureScreenshot", deadline, format="png",
                        captureBeyondViewport=True, clip=clip)
    return base64.b64decode(shot["data"])
