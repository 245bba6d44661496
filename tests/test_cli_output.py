"""What the command line prints around the work: plain progress lines when piped, no library
deprecation notices."""

from __future__ import annotations

import io
import time

from harness.progress import Progress


def wait_for(predicate, limit: float = 30.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_piped_progress_prints_lines_before_anything_finishes() -> None:
    stream = io.StringIO()  # not a terminal: plain lines, no bar
    with Progress("generating", 3, every=0.02, stream=stream) as bar:
        assert wait_for(lambda: stream.getvalue().count("\n") >= 2)
        bar.update(3, "12 tok/s")
        lines_at_end = stream.getvalue().count("\n")
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("generating 0/3 (0%)")
    assert lines[-1].startswith("generating 3/3 (100%)  12 tok/s")
    # after the last row nothing more is printed
    assert stream.getvalue().count("\n") == lines_at_end


def test_disabled_progress_prints_nothing() -> None:
    stream = io.StringIO()
    with Progress("training", 2, enabled=False, every=0.01, stream=stream) as bar:
        bar.update(1)
        bar.update(2)
    assert stream.getvalue() == ""


def test_library_deprecation_warnings_stay_out_of_the_output() -> None:
    import subprocess
    import sys

    code = (
        "import warnings\nfrom harness.cli import quiet_libraries\nquiet_libraries()\n"
        "warnings.warn('old API', FutureWarning)\nwarnings.warn('kept', UserWarning)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "old API" not in proc.stderr and "kept" in proc.stderr
