"""End to end: the real app under `streamlit run`, driven in Debian's headless Chromium.

Opens Compare from a URL that holds a filter and an open case, checks that both outputs are on the
page, the case scrolled into view, and that an output holding `<script>` shows as literal text,
filters by clicking a cell of the transition grid, types a probe and lists the cases where it
differs, grades three cases with the keyboard in the queue, checks that the Runs table fits 1440
px, saves a screenshot of every page to test-artifacts/, and checks that no request left
127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.report_store import CANDIDATE, SCRIPT, ReportStore, build

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGES = ["overview", "compare", "grading", "cases", "runs", "leaderboard", "training", "suite"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the report did not answer at {url} within {timeout:.0f}s")


def require_chromium(path: Path) -> None:
    """Fail, not skip: a skip would let `make test` pass with the report never driven in a
    browser. The message names the command that installs it."""
    if not path.exists():
        pytest.fail(
            f"{path} is not installed: run `sudo make browser-deps` (Debian's chromium), "
            "or leave this test out with -m 'not browser' (make test-fast)",
            pytrace=False,
        )


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, ReportStore]]:
    require_chromium(CHROMIUM)
    rs = build(tmp_path)
    port = free_port()
    from harness.cli.report import app_file, streamlit_command

    log = (tmp_path / "streamlit.log").open("wb")
    proc = subprocess.Popen(
        streamlit_command(app_file(), rs.db, port),
        cwd=tmp_path,
        env={**os.environ, "TUNEVAL_DB": str(rs.db)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield url, rs
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def row_ids(page) -> list[str]:
    """Case ids of the compact rows on Compare, top to bottom."""
    label = page.locator('[data-testid="stExpander"] summary [data-testid="stMarkdownContainer"]')
    return [t.split()[0] for t in label.all_inner_texts()]


def settle(page) -> None:
    """Wait until Streamlit has finished its rerun (its status widget says 'Running')."""
    page.wait_for_timeout(300)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=60_000)


def test_report_in_a_real_browser(served: tuple[str, ReportStore]) -> None:
    from playwright.sync_api import expect, sync_playwright

    from harness.store import Store

    url, rs = served
    expect.set_options(timeout=60_000)  # the first run imports scipy and altair: seconds
    ARTIFACTS.mkdir(exist_ok=True)
    dialogs: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.set_default_timeout(60_000)
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on("request", lambda r: requests.append(r.url))

            # --- Compare from a link: regressed cases only, case e open ---------------------
            query = urllib.parse.urlencode(
                {"a": rs.base_run, "b": rs.candidate_run, "change": "regressed", "case": "e"}
            )
            page.goto(f"{url}/compare?{query}")
            expect(page.get_by_text("Verdict:")).to_be_visible()
            expect(page.locator("code", has_text=SCRIPT).first).to_be_visible()
            settle(page)
            assert row_ids(page) == ["d", "e"]
            body = page.locator("body").inner_text()
            for output in ("The random module has choice.", SCRIPT, CANDIDATE["sqrt"]):
                assert output in body, output
            # the <script> output is text on the page, not an element, and it never ran
            planted = page.evaluate(
                "() => [...document.querySelectorAll('script')]"
                ".some(s => s.textContent.includes('alert(1)'))"
            )
            assert not planted and not dialogs
            assert "change=regressed" in page.url and "case=e" in page.url
            # the link lands on the open case: its row is scrolled into the 900 px view
            top = page.locator(".st-key-row-e").evaluate("e => e.getBoundingClientRect().top")
            assert -1 <= top < 900, top  # at the top edge, sub-pixel rounding may read -0.3

            # --- a click on the grid's bad → better cell lists that cell's case -------------
            cells = page.locator(".st-key-transition-grid .mark-rect path")
            expect(cells).to_have_count(9)
            cells.nth(2).click()  # row bad (top), column better (right)
            expect(page.locator('[data-testid="stExpander"] summary')).to_have_count(1)
            settle(page)
            assert row_ids(page) == ["c"]
            assert "cell=bad" in urllib.parse.unquote(page.url)
            # the pills are kept, widened by the cell's change: regressed + improved, the default
            assert "change=" not in page.url
            page.screenshot(path=str(ARTIFACTS / "report-compare-cell.png"), full_page=True)

            # --- type a probe: its shares, then only the cases where it differs ------------
            page.goto(f"{url}/compare?a={rs.base_run}&b={rs.candidate_run}")
            expect(page.get_by_text("Verdict:")).to_be_visible()
            settle(page)
            summaries = page.locator('[data-testid="stExpander"] summary')
            expect(summaries).to_have_count(4)  # the regressed and the improved cases
            assert sorted(row_ids(page)) == ["b", "c", "d", "e"]
            page.get_by_text("Where did it change? Slices and probes").click()
            settle(page)
            box = page.get_by_label("Probe: a regex, or e.g. words > 60", exact=True)
            box.fill("module")
            box.press("Enter")
            # the base says "module" in b and e, the candidate never does
            expect(page.get_by_text("0 cases match only in B, 2 only in A")).to_be_visible()
            settle(page)
            page.get_by_text("cases where the probe differs").click()
            expect(summaries).to_have_count(2)
            settle(page)
            assert sorted(row_ids(page)) == ["b", "e"]
            assert "probe=module" in page.url and "pf=differs" in page.url
            page.screenshot(path=str(ARTIFACTS / "report-compare-probe.png"), full_page=True)

            # --- grade three cases with the keyboard --------------------------------------
            page.goto(f"{url}/grading")
            expect(page.get_by_text("0 of 6 cases graded")).to_be_visible()
            settle(page)
            for n, (left, right) in enumerate((("3", "8"), ("2", "9"), ("1", "7")), start=1):
                page.locator("h1").first.click()  # focus the page, not an input
                page.keyboard.press(left)
                settle(page)
                page.keyboard.press(right)
                expect(page.get_by_text(f"{n} of 6 cases graded")).to_be_visible()
                settle(page)
            with Store(rs.db, readonly=True) as s:
                labels = {(r["run_id"], r["case_id"]): r["grade"] for r in s.labels()}
            assert len(labels) == 6
            assert labels[(rs.base_run, "d")] == "better"
            assert labels[(rs.candidate_run, "d")] == "good"

            # --- the Runs table fits the page at 1440 x 900, no column cut on the right ------
            page.goto(f"{url}/runs")
            scroller = page.locator('[data-testid="stDataFrame"] .dvn-scroller').first
            expect(scroller).to_be_visible()
            settle(page)
            sizes = scroller.evaluate("e => [e.scrollWidth, e.clientWidth]")
            assert sizes[0] <= sizes[1], sizes

            # --- every page, as a reviewer sees it at 1400 px -----------------------------
            page.set_viewport_size({"width": 1400, "height": 1800})
            for name in PAGES:
                page.goto(f"{url}/{name}")
                expect(page.locator("h1").first).to_be_visible()
                settle(page)
                page.wait_for_timeout(500)  # let charts finish drawing
                page.screenshot(path=str(ARTIFACTS / f"report-{name}.png"), full_page=True)
                assert not page.locator('[data-testid="stException"]').count(), name
        finally:
            browser.close()
    outside = [
        u
        for u in requests
        if not u.startswith(("data:", "blob:")) and urllib.parse.urlparse(u).hostname != "127.0.0.1"
    ]
    assert outside == [], outside
