"""`train --nproc` bounded by the machine, `--torchrun` options only: refused before any work."""

from __future__ import annotations

import pytest

from harness.errors import UserError
from harness.training.launch import check_launch, max_nproc


@pytest.mark.parametrize(
    "extra,expect",
    [(["hello.py"], "not a torchrun option"), (["--nnodes=2", "x.py"], "not a torchrun option"),
     (["--no-python"], "sets what torchrun runs"), (["-m"], "not a torchrun option"),
     (["--nproc-per-node=9"], "sets what torchrun runs")],
)  # fmt: skip
def test_torchrun_accepts_options_only(extra: list[str], expect: str) -> None:
    with pytest.raises(UserError, match=expect):
        check_launch(1, extra)


def test_nproc_bounded_by_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TUNEVAL_MAX_NPROC", raising=False)
    limit = max_nproc()
    check_launch(limit, ["--nnodes=1", "--rdzv-endpoint=host:29500"])
    with pytest.raises(UserError, match="at most"):
        check_launch(10000, [])
    monkeypatch.setenv("TUNEVAL_MAX_NPROC", "10000")
    check_launch(10000, [])
