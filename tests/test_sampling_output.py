"""What the terminal shows for runs of k samples per case: `runs show` (pass share, pass@k,
pass^k, flaky cases, majority grades, each case's passes out of k), `compare` and its Markdown
(the rates table with the deciding test), `runs export` carrying the per-case figures, and
`loop --samples` passing k to both evals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.comparison.compare import compare_runs
from harness.comparison.sampling import suite_outcomes
from harness.evaluation.runner import EvalOptions, evaluate_suite
from harness.generation import models
from harness.store import Store
from harness.suite.loader import load_suite
from tests.conftest import SUITE_YAML, run_cli, write_suite
from tests.test_sampling import SAMPLED, SeededFake


@pytest.fixture
def two_runs(tmp_path: Path, tiny_model_dir: Path, varied_model_dir: Path) -> dict:
    """A good and a worse sampled run (k = 4) of one 30-case suite, on a store file."""
    cases = [{"id": f"c{i}", "function": "dumps", "module": "json"} for i in range(30)]
    suite = load_suite(write_suite(tmp_path / "s", SAMPLED, cases=cases))
    db = tmp_path / "t.db"
    with Store(db) as store:
        ids = []
        for model, share in ((tiny_model_dir, 0.9), (varied_model_dir, 0.3)):
            ref = models.resolve(str(model), store)
            opts = EvalOptions(progress=False)
            ids.append(evaluate_suite(suite, ref, store, opts, backend=SeededFake(share)).run_id)
        rows = store.results(ids[0])
        comparison = compare_runs(store, ids[0], ids[1])
    return {"db": db, "a": ids[0], "b": ids[1], "rows": rows, "c": comparison}


def test_runs_show_prints_the_sampled_figures(two_runs: dict, capsys) -> None:
    code, out, err = run_cli(
        "runs", "show", two_runs["a"], "--db", str(two_runs["db"]), capsys=capsys
    )
    assert code == 0, err
    s = suite_outcomes(two_runs["rows"])
    assert "30 cases x 4 samples" in out
    for label, name in (
        ("pass share (good or better)", "pass_share"),
        ("pass@4 (at least one of 4 passes)", "pass_at_k"),
        ("pass^4 (all 4 pass)", "pass_hat_k"),
    ):
        f = s[name]
        line = next(x for x in out.splitlines() if label in x)
        assert f"{f['mean']:.1%}" in line and f"[{f['low']:.1%}, {f['high']:.1%}]" in line, line
    assert 0 < s["flaky_cases"] < 30  # both kinds of case are there to count
    assert _cells(out, "flaky cases")[:1] == [str(s["flaky_cases"])]
    for g in ("bad", "good", "better"):
        assert _cells(out, f"majority grade {g}")[:1] == [str(s["majority"][g])]
    assert sum(s["majority"].values()) == 30
    first = two_runs["rows"][0]
    passes = sum(x["grade"] != "bad" for x in first["samples"])
    assert f"{passes}/4 pass" in out


def test_compare_prints_the_rates_table_and_its_markdown(
    two_runs: dict, tmp_path: Path, capsys
) -> None:
    md = tmp_path / "c.md"
    args = ["compare", two_runs["a"], two_runs["b"], "--db", str(two_runs["db"])]
    code, out, err = run_cli(*args, "--markdown", str(md), capsys=capsys)
    assert code == 0, err
    s = two_runs["c"].sampling
    assert f"sign-flip test on per-case pass shares, p={s['p_value']:.3g}" in out
    assert "pass share (good or better, mean over cases)" in out
    for name in ("pass@4", "pass^4"):
        f = s[name]
        cells = _cells(out, name)
        assert cells[:3] == [
            f"{f['a'] * 100:.1f}%",
            f"{f['b'] * 100:.1f}%",
            f"{f['delta'] * 100:+.1f}",
        ]
    assert _cells(out, "flaky cases")[:2] == [str(s["flaky"]["a"]), str(s["flaky"]["b"])]
    down = len(two_runs["c"].changed("regressed"))
    assert down > 0 and f"0 up, {down} down" in out
    assert "/4 pass → " in out  # a regressed case's passes out of k on each side
    text = md.read_text()
    f = s["pass^4"]
    assert (
        f"| pass^4 | {f['a'] * 100:.1f}% | {f['b'] * 100:.1f}% | {f['delta'] * 100:+.1f} |" in text
    )


def test_export_carries_each_cases_sampled_figures(two_runs: dict, capsys) -> None:
    code, out, err = run_cli(
        "runs", "export", two_runs["a"], "--db", str(two_runs["db"]), capsys=capsys
    )
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    first, stored = rows[0], two_runs["rows"][0]
    passes = sum(x["grade"] != "bad" for x in stored["samples"])
    assert first["k"] == 4 and first["pass_share"] == passes / 4
    assert first["pass_at_k"] == (passes > 0) and first["pass_hat_k"] == (passes == 4)
    assert first["flaky"] == (0 < passes < 4) and first["grade"] == stored["grade"]
    assert [x["j"] for x in first["samples"]] == [0, 1, 2, 3]


def _cells(out: str, label: str) -> list[str]:
    """The cells after `label` on the first table line that holds it."""
    line = next(x for x in out.splitlines() if label in x)
    cells = [c.strip() for c in line.replace("┃", "│").split("│")]
    start = next(i for i, c in enumerate(cells) if label in c)
    return cells[start + 1 :]


def test_loop_passes_samples_to_both_evals(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`loop --samples 3` overrides the suite's 4: base and candidate draw 3 answers per case and
    the verdict is on per-case pass shares; on a greedy suite it is a located error first."""
    db = tmp_path / "t.db"
    greedy = write_suite(tmp_path / "greedy", SUITE_YAML)
    args = ["--base", str(tiny_model_dir), "--samples", "3", "--db", str(db)]
    code, _, err = run_cli("loop", str(greedy), *args, capsys=capsys)
    assert code == 2 and "field generation.temperature" in err and "Traceback" not in err, err
    assert not db.exists()
    suite = write_suite(tmp_path / "s", SAMPLED)
    for item in ("max_steps=2", "batch_size=2", "max_length=64", "val_examples=0"):
        args += ["--set", item]
    code, out, err = run_cli("loop", str(suite), *args, "--json", capsys=capsys)
    assert code == 0, err
    data = json.loads(out)
    sampling = data["comparison"]["sampling"]
    assert (sampling["k_a"], sampling["k_b"]) == (3, 3)
    assert sampling["test"] == "sign-flip on per-case pass shares" and "pass^3" in sampling
    with Store(db) as store:
        for run in (data["base_run"], data["candidate_run"]):
            assert [len(r["samples"]) for r in store.results(run)] == [3] * 6
