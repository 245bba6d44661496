"""The report on runs of k samples per case: Compare marks flaky cases, counts passes out of k,
sorts by the change in pass share, and an opened row shows every sample with its grade."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.evaluation.runner import EvalOptions, evaluate_suite
from harness.store import Store
from harness.suite.loader import load_suite
from tests.conftest import write_suite
from tests.report_store import _ref
from tests.test_report_apptest import open_page, open_row, rows, texts
from tests.test_sampling import SAMPLED, SeededFake


def test_compare_shows_samples_flaky_cases_and_sorts_by_pass_share(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases = [{"id": f"c{i:02d}", "function": "dumps", "module": "json"} for i in range(12)]
    suite = load_suite(write_suite(tmp_path / "mini", SAMPLED, cases=cases))
    db = tmp_path / "tuneval.db"
    with Store(db) as store:
        runs = {}
        for name, share in (("base-model", 0.9), ("mini-sft", 0.3)):
            opts = EvalOptions(progress=False, dtype="float32")
            res = evaluate_suite(suite, _ref(name, "local"), store, opts, backend=SeededFake(share))
            runs[name] = res.run_id
        shares = {
            r["case_id"]: sum(s["grade"] != "bad" for s in r["samples"])
            for r in store.results(runs["mini-sft"])
        }
        base = {
            r["case_id"]: sum(s["grade"] != "bad" for s in r["samples"])
            for r in store.results(runs["base-model"])
        }
    monkeypatch.setenv("TUNEVAL_DB", str(db))
    at = open_page("compare", a=runs["base-model"], b=runs["mini-sft"])
    assert "sign-flip" in texts(at, "error")[0].replace("\\", "")  # the regressed verdict
    at.pills(key="compare-changes").set_value([]).run()  # every case, not only regressions
    at.toggle(key="compare-by-share").set_value(True).run()
    order = rows(at)
    drops = [shares[c] - base[c] for c in order]
    assert drops == sorted(drops) and len(order) == 12  # the largest fall first
    labels = [e.label for e in at.expander if e.label.startswith("**")]
    flaky = [c for c in order if 0 < shares[c] < 4 or 0 < base[c] < 4]
    assert sum("flaky" in label for label in labels) == len(flaky) > 0
    first = order[0]
    assert f"{base[first]}/4 → {shares[first]}/4 passed" in labels[0]
    at = open_row(at, first)
    shown = texts(at, "markdown")
    assert sum(t.startswith("sample ") for t in shown) == 8  # 4 per side, each with its grade
