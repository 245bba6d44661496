"""Without Chromium the browser test fails, naming the command that installs it; it does not skip
(a skip would let `make test` pass with the report never driven in a browser)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_report_browser import require_chromium


def test_missing_chromium_fails_with_the_command(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception, match=r"sudo make browser-deps"):
        require_chromium(tmp_path / "no-chromium")


def test_present_chromium_passes(tmp_path: Path) -> None:
    (tmp_path / "chromium").write_text("")
    require_chromium(tmp_path / "chromium")
