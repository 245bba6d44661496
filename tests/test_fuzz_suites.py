"""The suite-loader fuzz test (`tests/fuzz_suites.py`): a bounded, repeatable run in every
`pytest`, and a long randomized one behind the `fuzz` marker:

    pytest -m fuzz tests/test_fuzz_suites.py            # 3000 new examples
    TUNEVAL_FUZZ_EXAMPLES=20000 pytest -m fuzz ...       # more
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO


def _fuzz(*args: str, timeout: float) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "tests.fuzz_suites", *args],
        cwd=REPO, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert res.returncode == 0, (res.stdout + res.stderr)[-6000:]


def test_fuzz_suite_loader() -> None:
    """200 mutated suite folders (the same ones each run): exit 2 with located one-line errors,
    no traceback, under a memory limit and a per-example time limit."""
    _fuzz("--examples", "200", timeout=900)


@pytest.mark.fuzz
def test_fuzz_suite_loader_long() -> None:
    examples = os.environ.get("TUNEVAL_FUZZ_EXAMPLES", "3000")
    _fuzz("--examples", examples, "--random", timeout=6 * 3600)
