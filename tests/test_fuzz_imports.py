"""The importer fuzz test (`tests/fuzz_imports.py`): a bounded, repeatable run in every
`pytest`, and a long randomized one behind the `fuzz` marker:

    pytest -m fuzz tests/test_fuzz_imports.py          # 1000 new examples
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO


def _fuzz(*args: str, timeout: float) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "tests.fuzz_imports", *args],
        cwd=REPO, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert res.returncode == 0, (res.stdout + res.stderr)[-6000:]


def test_fuzz_importers() -> None:
    """40 mutated sources across the four importers (the same ones each run): each imports or
    fails in located one-line problems, leaving no --out, under memory and time limits."""
    _fuzz("--examples", "40", timeout=900)


@pytest.mark.fuzz
def test_fuzz_importers_long() -> None:
    _fuzz("--examples", os.environ.get("TUNEVAL_FUZZ_EXAMPLES", "1000"), "--random",
          timeout=6 * 3600)  # fmt: skip
