"""``vla traces view`` in a real headless Chromium (Debian's /usr/bin/chromium via Playwright).

Starts the viewer as a subprocess on a free port of 127.0.0.1 over a trace file written from
real samples (tests/trace_records.py), opens the page, checks the record count, applies the
page's filters (failures only, free text, kind) and the server-side filter language, saves a
screenshot and stops the server by its PID.

``VLA_SAVE_SCREENSHOT=1`` also copies the screenshot to ``docs/report_screenshot.png``;
``VLA_SCREENSHOT_TRACE=FILE`` (with ``VLA_SCREENSHOT_DATA=DIR``, ``VLA_SCREENSHOT_LIMIT=N``)
browses that trace file instead, e.g. ``runs/tiny/grpo/rollouts.jsonl``.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from trace_records import build_trace

from vla.trace_tools.load import load_trace_file
from vla.trace_tools.query import parse_filter
from vla.trace_tools.report import group_entries

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ROOT = Path(__file__).resolve().parents[1]
SERVER_FILTER = "kind == grpo and rewards.consistency.value < 0.5"

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is missing: scripts/setup.sh installs Debian's chromium")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def trace_input(request, tmp_path_factory):
    external = os.environ.get("VLA_SCREENSHOT_TRACE")
    if external:
        data = os.environ.get("VLA_SCREENSHOT_DATA")
        return Path(external), Path(data) if data else None, int(
            os.environ.get("VLA_SCREENSHOT_LIMIT", "8"))
    data_dir = request.getfixturevalue("small_data_dir")
    built = build_trace(data_dir, tmp_path_factory.mktemp("viewer"))
    return built.path, built.data_dir, 200


def start_viewer(trace: Path, data: Path | None, limit: int, timeout: float = 90.0):
    """The viewer process and the URL it printed."""
    cmd = [sys.executable, "-m", "vla.cli", "traces", "view", str(trace), "--port", "0",
           "--limit", str(limit)] + (["--data", str(data)] if data else [])
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
    deadline, seen = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        if " at http://127.0.0.1:" in line:
            url = line.split(" at ", 1)[1].split()[0]
            while httpx.get(url + "healthz", timeout=5).status_code != 200:
                assert time.monotonic() < deadline, f"{url}healthz not ready in {timeout:.0f} s"
                time.sleep(0.2)
            return proc, url
    proc.kill()
    raise AssertionError("the viewer did not start:\n" + "".join(seen))


def stop_by_pid(proc: subprocess.Popen) -> int:
    os.kill(proc.pid, signal.SIGTERM)
    try:
        return proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        return proc.wait(timeout=5)


def shown_records(trace: Path, limit: int, expression: str | None = None):
    entries = load_trace_file(trace).entries
    if expression:
        flt = parse_filter(expression)
        from vla.trace_tools.facts import virtual_fields

        entries = [e for e in entries if flt(e.record, virtual_fields(e.facts))]
    return [e for g in group_entries(entries)[:limit] for e in g.entries]


def test_viewer_in_chromium(browser, trace_input, tmp_path):
    trace, data, limit = trace_input
    shown = shown_records(trace, limit)
    failures = [e for e in shown if e.facts.failure]
    assert shown and failures and len(failures) < len(shown)
    proc, url = start_viewer(trace, data, limit)
    try:
        assert url.startswith("http://127.0.0.1:")
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url, wait_until="load")
        assert int(page.inner_text("#record-count")) == len(shown)
        assert page.inner_text("#shown-count") == f"{len(shown)} of {len(shown)} records shown"
        assert page.locator("tr.rec:visible").count() == len(shown)

        # client-side: failures only (unparsable or inconsistent)
        page.check("#failures-only")
        assert page.inner_text("#shown-count") == (
            f"{len(failures)} of {len(shown)} records shown")
        visible = page.locator("tr.rec:visible")
        assert visible.count() == len(failures)
        assert {visible.nth(i).get_attribute("data-failure")
                for i in range(visible.count())} == {"1"}
        assert page.locator("tr.rec:visible .flag.mismatch, tr.rec:visible .flag.unparsable"
                            ).count() >= 1
        shot = tmp_path / "report_screenshot.png"
        page.screenshot(path=str(shot))
        assert shot.stat().st_size > 10_000

        # + free text: one sample's failures
        sample = failures[-1].facts.sample_id
        page.fill("#text-filter", sample)
        want = sum(e.facts.sample_id == sample for e in failures)
        assert page.locator("tr.rec:visible").count() == want
        assert page.locator("section.group:visible").count() >= 1
        page.fill("#text-filter", "")
        page.uncheck("#failures-only")
        kinds = {e.facts.kind for e in shown}
        kind = sorted(kinds)[0]
        page.select_option("#kind-filter", kind)
        assert page.locator("tr.rec:visible").count() == sum(e.facts.kind == kind
                                                              for e in shown)

        # server-side: the filter language, then a bad expression
        page.fill("#server-filter", SERVER_FILTER)
        with page.expect_navigation():
            page.click("#server-filter-apply")
        matching = shown_records(trace, limit, SERVER_FILTER)
        assert int(page.inner_text("#record-count")) == len(matching)
        assert page.locator("tr.rec").count() == len(matching)
        assert all(e.facts.kind == "grpo" for e in matching)
        page.fill("#server-filter", "kind = grpo")
        with page.expect_navigation():
            page.click("#server-filter-apply")
        assert "column 6" in page.inner_text("#filter-error")
        api = httpx.get(url + "api/records", params={"filter": SERVER_FILTER}, timeout=30)
        assert api.status_code == 200 and api.json()["matched"] == len(
            shown_records(trace, 10**9, SERVER_FILTER))
        page.close()
    finally:
        code = stop_by_pid(proc)
    assert proc.poll() is not None, code
    if os.environ.get("VLA_SAVE_SCREENSHOT"):
        target = ROOT / "docs" / "report_screenshot.png"
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, target)
