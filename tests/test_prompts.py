"""Prompt variants: validated with located errors, few-shot examples from train only (never a
test prompt), the same on every run; variants in the cache key and the run's identity; runs of
two variants pair case by case; compare shows what each answer cost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import UserError
from harness.evaluation.runner import conversation
from harness.suite.loader import load_suite
from tests.compare_helpers import answers, fake_run
from tests.conftest import CASES, SUITE_YAML, TRAIN, run_cli, write_suite

ANSWER_LINE = '  assistant: "{module}"\n'


def with_variants(text: str) -> str:
    """The mini suite's YAML with `text` as its prompt.variants block."""
    return SUITE_YAML.replace(ANSWER_LINE, ANSWER_LINE + "  variants:\n" + text)


VARIANTS = with_variants('    few-shot: {shots: 2}\n    terse: {system: "One word."}\n')


@pytest.fixture
def variant_suite(tmp_path: Path) -> Path:
    return write_suite(tmp_path / "mini", VARIANTS)


def problems(folder: Path) -> list[str]:
    with pytest.raises(UserError) as e:
        load_suite(folder)
    return e.value.lines()


# --- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variant", "where", "message"),
    [
        ('bad: {user: "{nope}"}', "line 9 (prompt.variants.bad.user)", "placeholder {nope}"),
        ("bad: {shots: 2, split: test}", "line 9 (prompt.variants.bad.split)", "never from 'test'"),
        (
            "bad: {shots: 2, split: validation}",
            "line 9 (prompt.variants.bad.shots)",
            "data.validation, which this suite does not have",
        ),
        ("bad: {shots: 5}", "line 9 (prompt.variants.bad.shots)", "has 4 usable"),
        ("bad: {}", "line 9 (prompt.variants.bad)", "changes nothing"),
        ("Bad Name: {shots: 1}", "line 9 (prompt.variants.Bad Name)", "lower-case"),
        ("bad: {shots: -1}", "line 9 (prompt.variants.bad.shots)", "greater than or equal to 0"),
        ("bad: {shot: 2}", "line 9 (prompt.variants.bad.shot)", "Extra inputs"),
    ],
)
def test_a_bad_variant_is_a_located_problem(
    tmp_path: Path, variant: str, where: str, message: str
) -> None:
    folder = write_suite(tmp_path / "s", with_variants(f"    {variant}\n"))
    [line] = problems(folder)
    assert f"suite.yaml:{where}" in line and message in line, line


def test_shots_need_the_answer_template(tmp_path: Path) -> None:
    text = with_variants("    bad: {shots: 1}\n").replace(ANSWER_LINE, "")
    text = text.replace("  train: train.jsonl\n", "  validation: train.jsonl\n")
    text = text.replace("{shots: 1}", "{shots: 1, split: validation}")
    lines = problems(write_suite(tmp_path / "s", text))
    assert any("prompt.variants.bad.shots" in x and "prompt.assistant" in x for x in lines), lines


def test_a_field_missing_from_the_train_rows_is_located(tmp_path: Path) -> None:
    text = with_variants('    bad: {shots: 1, user: "{function} in {hint}?"}\n')
    cases = [{**c, "hint": "x"} for c in CASES]
    lines = problems(write_suite(tmp_path / "s", text, cases=cases))
    assert len(lines) == 1 and "prompt.variants.bad.user" in lines[0], lines
    assert "train.jsonl line 1 and 3 more" in lines[0]


# --- which examples ----------------------------------------------------------------------------


def test_shots_come_from_train_and_are_user_assistant_turns(variant_suite: Path) -> None:
    suite = load_suite(variant_suite)
    messages = conversation(suite, suite.cases[0], "few-shot")
    assert [m["role"] for m in messages] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert messages[-1]["content"] == "Which module holds dedent?"
    shown = [
        (u["content"], a["content"])
        for u, a in zip(messages[1:-1:2], messages[2:-1:2], strict=True)
    ]
    train = {(f"Which module holds {r['function']}?", r["module"]) for r in TRAIN}
    assert set(shown) <= train and len(set(shown)) == 2
    assert conversation(suite, suite.cases[0]) == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Which module holds dedent?"},
    ]
    terse = conversation(suite, suite.cases[0], "terse")
    assert terse[0] == {"role": "system", "content": "One word."} and len(terse) == 2


def test_shots_are_the_same_for_every_case_and_every_load(variant_suite: Path) -> None:
    first, again = load_suite(variant_suite), load_suite(variant_suite)
    prefixes = {json.dumps(conversation(first, c, "few-shot")[:-1]) for c in first.cases}
    assert len(prefixes) == 1
    assert first.shots == again.shots
    seeds = set()
    for seed in range(8):
        text = VARIANTS.replace("{shots: 2}", f"{{shots: 2, seed: {seed}}}")
        suite = load_suite(write_suite(variant_suite.parent / f"seed{seed}", text))
        seeds.add(json.dumps(suite.shots["few-shot"]))
    assert len(seeds) > 1  # the seed chooses


@pytest.mark.parametrize("seed", range(6))
def test_a_train_row_that_repeats_a_test_prompt_is_never_shown(tmp_path: Path, seed: int) -> None:
    """Plant test cases in the train split (one exact copy, one near copy): with every seed, the
    examples are the clean train rows, never the planted ones."""
    planted = [
        {"function": "dedent", "module": "textwrap"},  # test case a, exactly
        {"function": "deepcopy2", "module": "copy"},  # test case f, nearly
    ]
    text = VARIANTS.replace("{shots: 2}", f"{{shots: 4, seed: {seed}}}")
    suite = load_suite(write_suite(tmp_path / "s", text, train=planted + TRAIN))
    shown = suite.shots["few-shot"]
    assert sorted(r["function"] for r in shown) == sorted(r["function"] for r in TRAIN)
    tests = {f"Which module holds {c['function']}?" for c in CASES}
    for case in suite.cases:
        users = [m["content"] for m in conversation(suite, case, "few-shot")[1:-1]]
        assert not tests & set(users)


def test_too_few_clean_rows_says_why(tmp_path: Path) -> None:
    text = VARIANTS.replace("{shots: 2}", "{shots: 3}")
    train = [{"function": c["function"], "module": c["module"]} for c in CASES[:3]] + TRAIN[:2]
    [line] = problems(write_suite(tmp_path / "s", text, train=train))
    assert "has 2 usable (3 left out: they repeat a test prompt" in line


# --- runs, the cache, comparisons --------------------------------------------------------------


def test_variants_are_cached_apart_and_recorded(store, variant_suite: Path) -> None:
    from harness.comparison.compare import compare_runs

    base = fake_run(store, variant_suite, "m", answers())
    few = fake_run(store, variant_suite, "m", answers({"a": "os"}), prompt="few-shot")
    # The few-shot run generated its own answers: the base run's cache did not answer for it.
    assert store.results(few)[0]["output"] == "os" and not store.results(few)[0]["cached"]
    assert (
        store.run(few)["prompt_variant"] == "few-shot" and store.run(base)["prompt_variant"] == ""
    )
    again = fake_run(store, variant_suite, "m", answers({"a": "never asked"}), prompt="few-shot")
    assert again != few and all(r["cached"] for r in store.results(again))
    c = compare_runs(store, base, few)  # one suite file: the two variants pair case by case
    assert c.n == len(CASES) and not c.warnings
    assert c.transitions["better"]["bad"] == 1


def test_adding_a_variant_keeps_the_base_prompt_cached(store, tmp_path: Path) -> None:
    folder = write_suite(tmp_path / "mini")
    fake_run(store, folder, "m", answers())
    (folder / "suite.yaml").write_text(VARIANTS)
    run = fake_run(store, folder, "m", answers({"a": "never asked"}))
    assert all(r["cached"] for r in store.results(run))


def test_an_unknown_variant_stops_before_anything_is_stored(store, variant_suite: Path) -> None:
    with pytest.raises(UserError, match=r"no prompt variant 'nope' \(variants: few-shot, terse\)"):
        fake_run(store, variant_suite, "m", answers(), prompt="nope")
    assert store.runs() == []


def test_a_model_name_resolves_to_the_run_of_the_asked_prompt(store, variant_suite: Path) -> None:
    from harness.comparison.compare import resolve_run

    base = fake_run(store, variant_suite, "m", answers())
    few = fake_run(store, variant_suite, "m", answers(), prompt="few-shot")
    assert resolve_run(store, "m", "mini") == base  # the newest run is few-shot's
    assert resolve_run(store, "m", "mini", "few-shot") == few
    assert resolve_run(store, few, None, "few-shot") == few
    with pytest.raises(UserError, match="used prompt variant 'few-shot', not the base prompt"):
        resolve_run(store, few, None, "")
    with pytest.raises(
        UserError, match="no complete run on suite 'mini' with prompt variant 'terse'"
    ):
        resolve_run(store, "m", "mini", "terse")


def test_the_leaderboard_ranks_models_by_their_base_prompt_runs(store, variant_suite: Path) -> None:
    from harness.comparison.leaderboard import leaderboard

    base = fake_run(store, variant_suite, "m", answers({"a": ""}))
    fake_run(store, variant_suite, "m", answers(), prompt="few-shot")  # newer, not another model
    other = fake_run(store, variant_suite, "n", answers())
    board = leaderboard(store, "mini")
    assert sorted((e.model, e.run_id) for e in board.entries) == [("m", base), ("n", other)]


def test_cost_lines_on_the_tiny_model(store, variant_suite: Path, tiny_model_dir: Path) -> None:
    from harness.comparison.compare import compare_runs
    from harness.comparison.format import markdown
    from harness.evaluation.runner import EvalOptions, evaluate_suite
    from harness.generation import models

    suite = load_suite(variant_suite)
    ref = models.resolve(str(tiny_model_dir), store)
    opts = EvalOptions(progress=False, dtype="float32", batch_size=4)
    base = evaluate_suite(suite, ref, store, opts)
    few = evaluate_suite(suite, ref, store, EvalOptions(**{**vars(opts), "prompt": "few-shot"}))
    c = compare_runs(store, few.run_id, base.run_id)
    cost = {line.figure: line for line in c.cost}
    assert set(cost) == {"prompt_tokens", "output_tokens", "seconds"}
    tokens = cost["prompt_tokens"]
    assert tokens.n == len(CASES) and tokens.a > tokens.b > 0  # the examples cost prompt tokens
    assert tokens.ratio is not None and tokens.low is not None and tokens.high is not None
    assert tokens.low <= tokens.ratio <= tokens.high < 1
    assert c.to_json()["cost"]["prompt_tokens"]["a"] == tokens.a
    assert "| prompt tokens |" in markdown(c) and "+ few-shot" in markdown(c)


def test_ratio_bootstrap() -> None:
    from harness.comparison import stats

    r = stats.ratio_bootstrap([10, 10, 10, 10], [5, 5, 5, 5])
    assert r == (0.5, 0.5, 0.5)
    ratio, low, high = stats.ratio_bootstrap([10, 20, 30, 40, 50], [5, 30, 10, 40, 20])  # type: ignore[misc]
    assert ratio == pytest.approx(105 / 150) and low < ratio < high
    assert stats.ratio_bootstrap([0, 0], [1, 2]) is None


# --- the command line --------------------------------------------------------------------------


def test_eval_compare_and_runs_list_name_the_prompt(
    tmp_path: Path, variant_suite: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "t.db")
    base = ["eval", str(variant_suite), "--model", str(tiny_model_dir), "--db", db, "--json"]
    code, out, err = run_cli(*base, capsys=capsys)
    assert code == 0, err
    assert json.loads(out)["prompt"] is None
    code, out, err = run_cli(*base, "--prompt", "few-shot", capsys=capsys)
    assert code == 0, err
    assert json.loads(out)["prompt"] == "few-shot"
    code, out, err = run_cli(*base[:-1], "--prompt", "terse", capsys=capsys)
    assert code == 0 and "+ terse" in " ".join(out.split()), err  # the table title wraps
    code, out, _ = run_cli("runs", "list", "--db", db, "--json", capsys=capsys)
    assert [r["prompt"] for r in json.loads(out)] == [None, "few-shot", "terse"]
    model = str(tiny_model_dir)
    args = ["compare", model, model, "--suite", str(variant_suite), "--db", db]
    code, out, err = run_cli(*args, "--prompt-a", "few-shot", capsys=capsys)
    assert code == 0, err
    assert f"{model} + few-shot" in out and "cost per case" in out and "prompt tokens" in out
    code, out, _ = run_cli(*args, "--prompt-a", "few-shot", "--json", capsys=capsys)
    data = json.loads(out)
    assert data["run_a"]["prompt_variant"] == "few-shot" and data["cost"]["prompt_tokens"]["n"] == 6


def test_unknown_prompt_exits_2_and_writes_nothing(
    tmp_path: Path, variant_suite: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "t.db"
    code, _, err = run_cli(
        "eval", str(variant_suite), "--prompt", "fewshot", "--db", str(db), capsys=capsys
    )
    assert code == 2 and "no prompt variant 'fewshot'" in err and not db.exists()
    code, _, err = run_cli(
        "loop", str(variant_suite), "--prompt-baseline", "fewshot", "--db", str(db), capsys=capsys
    )
    assert code == 2 and "no prompt variant 'fewshot'" in err and not db.exists()


def test_loop_with_a_prompt_baseline_prints_both_verdicts(
    tmp_path: Path, variant_suite: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "t.db")
    args = ["loop", str(variant_suite), "--base", str(tiny_model_dir), "--db", db]
    args += ["--prompt-baseline", "few-shot"]
    for item in ("max_steps=2", "batch_size=2", "max_length=64", "val_examples=0"):
        args += ["--set", item]
    code, out, err = run_cli(*args, capsys=capsys)
    assert code == 0, err
    assert "5/5 comparing" in err
    model = str(tiny_model_dir)
    tail = out[out.index("verdicts") :]
    assert f"candidate vs {model}: " in tail and f"candidate vs {model} + few-shot: " in tail
    assert "the candidate spends" in tail and "the prompt tokens" in tail
    assert out.count("cost per case") == 2
    code, out, err = run_cli(*args, "--json", capsys=capsys)  # everything cached or reused now
    assert code == 0, err
    data = json.loads(out)
    third = data["prompt_baseline"]
    assert third["prompt"] == "few-shot" and third["verdict"] == third["comparison"]["verdict"]
    assert third["comparison"]["run_b"]["id"] == data["candidate_run"]
    assert third["run"] != data["base_run"]
    assert "prompt_tokens" in third["comparison"]["cost"]


@pytest.mark.slow
def test_three_arm_loop_on_the_packaged_model(
    tmp_path: Path, variant_suite: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["loop", str(variant_suite), "--db", str(tmp_path / "t.db"), "--json", "--limit", "4"]
    args += ["--prompt-baseline", "few-shot"]
    for item in ("max_steps=2", "batch_size=2", "val_examples=0"):
        args += ["--set", item]
    code, out, err = run_cli(*args, capsys=capsys)
    assert code == 0, err
    data = json.loads(out)
    third = data["prompt_baseline"]["comparison"]
    assert third["n"] == 4 and data["comparison"]["n"] == 4
    tokens = third["cost"]["prompt_tokens"]
    assert tokens["a"] > tokens["b"] > 0  # two worked examples cost the base prompt tokens
    assert third["cost"]["output_tokens"]["n"] == 4 and third["cost"]["seconds"]["a"] > 0
