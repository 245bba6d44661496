"""End to end: the real app under `streamlit run`, driven in Debian's headless Chromium.

Opens Compare on a store with a base and a candidate run, filters to regressed cases, checks that
both outputs are on the page and that an output holding `<script>` shows as literal text, and saves
a screenshot to test-artifacts/."""

from __future__ import annotations

import os
import socket
import subprocess
import time
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


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, ReportStore]]:
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed (make browser-deps installs it)")
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


def case_headers(page) -> list[str]:
    return [t.split()[1] for t in page.locator("h4").all_inner_texts() if t.startswith("case ")]


def test_compare_in_a_real_browser(served: tuple[str, ReportStore]) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, rs = served
    expect.set_options(timeout=60_000)  # the first run imports scipy and altair: seconds
    ARTIFACTS.mkdir(exist_ok=True)
    dialogs: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2800})
            page.set_default_timeout(60_000)
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(f"{url}/compare")
            expect(page.get_by_text("Verdict:")).to_be_visible()
            expect(page.locator("h4", has_text="case b")).to_be_visible()

            page.get_by_role("button", name="improved (2)").click()  # leave regressed only
            expect(page.locator("h4", has_text="case b")).to_have_count(0)
            expect(page.locator("h4", has_text="case e")).to_be_visible()
            assert case_headers(page) == ["d", "e"]

            body = page.locator("body").inner_text()
            for output in ("math", CANDIDATE["sqrt"], "The random module has choice.", SCRIPT):
                assert output in body, output
            # the <script> output is text on the page, not an element, and it never ran
            expect(page.locator("code", has_text=SCRIPT).first).to_be_visible()
            planted = page.evaluate(
                "() => [...document.querySelectorAll('script')]"
                ".some(s => s.textContent.includes('alert(1)'))"
            )
            assert not planted and not dialogs
            page.wait_for_timeout(500)  # let charts finish drawing
            page.screenshot(path=str(ARTIFACTS / "report-compare.png"), full_page=True)
        finally:
            browser.close()
