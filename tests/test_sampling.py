"""k samples per case: seeds, the per-case estimators against brute force, the sign-flip test,
the cache and resuming under sampling, located errors, and the rate comparison."""

from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
import subprocess
import time
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from harness.comparison import stats
from harness.comparison.compare import compare_runs
from harness.comparison.sampling import (
    case_outcome,
    majority_grade,
    pass_at_k,
    pass_hat_k,
    sample_seed,
)
from harness.errors import UserError
from harness.evaluation.runner import EvalOptions, evaluate_suite
from harness.generation import models
from harness.suite.loader import load_suite
from tests.conftest import SUITE_YAML, TUNEVAL, cli, write_suite

SAMPLED = SUITE_YAML.replace(
    'generation: {max_new_tokens: 16, stop: ["\\n\\n"]}',
    "generation: {max_new_tokens: 8, temperature: 1.0, samples: 4}",
)


def test_sample_seed_is_a_function_of_suite_seed_case_and_j() -> None:
    assert sample_seed(0, "a", 0) == sample_seed(0, "a", 0)
    seeds = {sample_seed(s, c, j) for s in (0, 1) for c in ("a", "b") for j in range(3)}
    assert len(seeds) == 12 and all(0 <= x < 2**63 for x in seeds)


@pytest.mark.parametrize("n", range(1, 7))
def test_estimators_match_brute_force(n: int) -> None:
    """pass@k and pass^k over every k-subset of n samples with c passes."""
    for c in range(n + 1):
        outcomes = [True] * c + [False] * (n - c)
        for k in range(1, n + 1):
            subsets = list(itertools.combinations(outcomes, k))
            assert pass_at_k(n, c, k) == pytest.approx(np.mean([any(s) for s in subsets]))
            assert pass_hat_k(n, c, k) == pytest.approx(np.mean([all(s) for s in subsets]))
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)


def test_case_outcome_and_majority() -> None:
    o = case_outcome(["good", "bad", "better", "good", "bad"])
    assert (o["passes"], o["pass_share"], o["spread"], o["flaky"]) == (3, 0.6, 2, True)
    assert o["pass_at_k"] == 1.0 and o["pass_hat_k"] == 0.0 and o["majority"] == "bad"  # tie
    assert majority_grade(["better", "good", "better"]) == "better"
    assert case_outcome(["good"] * 3)["flaky"] is False


def test_sign_flip_is_exact() -> None:
    rng = np.random.default_rng(0)
    for _ in range(4):
        d = rng.integers(-4, 5, size=11)
        signed = [abs(np.dot(np.abs(d), s)) for s in itertools.product((1, -1), repeat=11)]
        assert stats.sign_flip(d) == pytest.approx(np.mean(np.array(signed) >= abs(d.sum())))
    # at k = 1 it is the exact McNemar test; vectorised rows equal one-at-a-time
    d = np.array([1] * 4 + [-1] * 13 + [0] * 30)
    assert stats.sign_flip(d) == pytest.approx(stats.mcnemar(4, 13))
    many = rng.integers(-5, 6, size=(7, 40))
    assert np.allclose(stats.sign_flip(many), [stats.sign_flip(r) for r in many])
    assert stats.sign_flip(np.zeros(5, dtype=int)) == 1.0


def test_greedy_suite_with_samples_is_a_located_error(tmp_path: Path, tiny_model_dir) -> None:
    bad = write_suite(tmp_path / "bad", SUITE_YAML.replace("stop:", "samples: 3, stop:"))
    with pytest.raises(UserError, match="samples: 3 needs temperature > 0") as e:
        load_suite(bad)
    assert "suite.yaml:line 8 (generation)" in str(e.value)
    greedy = write_suite(tmp_path / "greedy")
    db = tmp_path / "t.db"
    res = cli("eval", str(greedy), "--model", str(tiny_model_dir), "--samples", "4", db=db)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "suite.yaml:line 8, field generation.temperature" in res.stderr
    assert not db.exists()  # nothing written before the input is known good


class SeededFake:
    """Answers from each row's seed (so the cache and the seeds are what is tested); counts rows."""

    def __init__(self, pass_share: float = 0.5) -> None:
        self.asked: list[int] = []
        self.pass_share = pass_share

    def generate(self, conversations, settings, on_batch, *, seeds=None):
        from harness.generation.types import Generation

        assert seeds is not None and len(seeds) == len(conversations)
        for start in range(0, len(conversations), 5):
            idx = list(range(start, min(start + 5, len(conversations))))
            self.asked += [seeds[i] for i in idx]
            gens = [Generation(self._answer(conversations[i], seeds[i]), 3) for i in idx]
            on_batch(idx, gens)

    def _answer(self, conv, seed: int) -> str:
        module = conv[-1]["content"].split()[-1].rstrip("?")
        good = (seed % 1000) / 1000 < self.pass_share
        return (
            {"dedent": "textwrap", "dumps": "json", "getcwd": "os"}.get(module, "copy")
            if (good)
            else "no idea"
        )


def test_raising_k_reuses_earlier_samples_and_reruns_are_hits(
    tmp_path: Path, store, tiny_model_dir, capsys
) -> None:
    suite = load_suite(write_suite(tmp_path / "s", SAMPLED))
    ref = models.resolve(str(tiny_model_dir), store)
    fake = SeededFake()
    first = evaluate_suite(suite, ref, store, EvalOptions(progress=False), backend=fake)
    assert (first.generated, len(fake.asked)) == (24, 24)
    again = evaluate_suite(suite, ref, store, EvalOptions(progress=False), backend=fake)
    assert (again.generated, again.cached, len(fake.asked)) == (0, 6, 24)  # all cache hits
    more = evaluate_suite(suite, ref, store, EvalOptions(samples=6), backend=fake)
    assert "6 cases x 6 samples = 36 answers" in capsys.readouterr().err  # the plan, up front
    assert more.run_id != first.run_id and more.generated == 12 and len(fake.asked) == 36
    rows4, rows6 = store.results(first.run_id), store.results(more.run_id)
    for r4, r6 in zip(rows4, rows6, strict=True):
        assert [s["output"] for s in r6["samples"][:4]] == [s["output"] for s in r4["samples"]]
        assert [s["seed"] for s in r6["samples"]] == [
            sample_seed(0, r6["case_id"], j) for j in range(6)
        ]
    row = rows4[0]
    shares = sum(s["grade"] != "bad" for s in row["samples"]) / 4
    assert row["criteria"]["names-module"]["score"] == pytest.approx(shares)
    assert more.to_json()["sampling"]["k"] == 6


class Killed(SeededFake):
    """Delivers 10 samples (so two cases are whole and one is half done), then dies."""

    def generate(self, conversations, settings, on_batch, *, seeds=None):
        from harness.generation.types import Generation

        idx = list(range(10))
        self.asked += [seeds[i] for i in idx]
        on_batch(idx, [Generation(self._answer(conversations[i], seeds[i]), 3) for i in idx])
        raise KeyboardInterrupt


def test_an_interrupted_sampled_run_generates_each_sample_once(
    tmp_path: Path, store, tiny_model_dir
) -> None:
    suite = load_suite(write_suite(tmp_path / "s", SAMPLED))
    ref = models.resolve(str(tiny_model_dir), store)
    killed = Killed()
    with pytest.raises(KeyboardInterrupt):
        evaluate_suite(suite, ref, store, EvalOptions(progress=False), backend=killed)
    [run] = store.runs()
    assert len(store.results(run["id"])) == 2  # whole cases only
    fake = SeededFake()
    done = evaluate_suite(suite, ref, store, EvalOptions(progress=False), backend=fake)
    assert done.run_id == run["id"] and done.resumed
    assert sorted(killed.asked + fake.asked) == sorted(set(killed.asked + fake.asked))
    assert len(killed.asked + fake.asked) == 24
    assert all(len(r["samples"]) == 4 for r in store.results(run["id"]))


def _stored_generations(db: Path) -> int:
    """Sample answers committed to the store so far, read beside the writing process."""
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as con:
            return int(con.execute("SELECT count(*) FROM generations").fetchone()[0])
    except sqlite3.OperationalError:  # the store or its tables are not made yet
        return 0


@pytest.mark.slow  # two real `tuneval` processes
def test_kill_9_mid_run_then_rerun_stores_each_sample_once(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    """Real generation at temperature 1.0, k = 4: `tuneval eval` killed with -9 once some
    samples are committed; the rerun resumes that run, generates only the samples the store
    lacks, and ends with every (case, j) stored once under its own seed."""
    cases = [{"id": f"c{i}", "function": f"f{i}", "module": "json"} for i in range(8)]
    folder = write_suite(tmp_path / "s", SAMPLED, cases)
    db = tmp_path / "t.db"
    args = [TUNEVAL, "eval", str(folder), "--model", str(tiny_model_dir), "--batch-size", "3"]
    env = {**os.environ, "TUNEVAL_DB": str(db)}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    # kill once a case is half done (3 rows a batch: most counts are), the case that matters
    while (n := _stored_generations(db)) < 4 or n % 4 == 0:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stored = _stored_generations(db)
    assert 4 <= stored < 32 and stored % 4, stored  # mid-run, with a case half done
    done = cli(*args[1:], "--json", db=db)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["resumed"] and result["n"] == 8
    assert result["generated"] == 32 - stored  # nothing committed is generated again
    assert _stored_generations(db) == 32
    from harness.store import Store

    with Store(db) as store:
        [run] = store.runs()
        rows = store.results(run["id"])
    assert run["id"] == result["run_id"] and run["status"] == "complete"
    assert sorted(r["case_id"] for r in rows) == sorted(c["id"] for c in cases)
    for r in rows:
        assert [s["j"] for s in r["samples"]] == [0, 1, 2, 3]
        assert [s["seed"] for s in r["samples"]] == [
            sample_seed(0, r["case_id"], j) for j in range(4)
        ]
    assert len({s["output"] for r in rows for s in r["samples"]}) > 16  # sampled, not greedy


def _sampled_run(suite, ref, store, share: float) -> str:
    opts = EvalOptions(progress=False)
    return evaluate_suite(suite, ref, store, opts, backend=SeededFake(share)).run_id


def test_rate_comparison_verdicts_and_must_pass_on_pass_hat_k(
    tmp_path: Path, store, tiny_model_dir, varied_model_dir
) -> None:
    cases = [{"id": f"c{i}", "function": "dumps", "module": "json"} for i in range(40)]
    cases[0]["must_pass"] = True
    suite = load_suite(write_suite(tmp_path / "s", SAMPLED, cases=cases))
    good = _sampled_run(suite, models.resolve(str(tiny_model_dir), store), store, 0.95)
    worse = _sampled_run(suite, models.resolve(str(varied_model_dir), store), store, 0.3)
    c = compare_runs(store, good, worse)
    assert c.verdict == "regressed" and c.sampling is not None
    assert c.sampling["k_a"] == 4 and c.sampling["p_value"] < 0.001
    assert c.pass_rate.delta == pytest.approx(c.pass_rate.b - c.pass_rate.a)
    shares = [p.to_json()["pass_share_b"] for p in c.pairs]
    assert c.pass_rate.b == pytest.approx(np.mean(shares))
    first = c.pairs[0]
    all_pass = all(s["grade"] != "bad" for s in first.a["samples"])
    broken = all_pass and any(s["grade"] == "bad" for s in first.b["samples"])
    assert (c.must_pass_broken == ["c0"]) == broken
    assert {p.change for p in c.pairs} <= {"regressed", "unchanged"}
    data = json.loads(json.dumps(c.to_json()))
    assert len(data["pairs"][0]["samples_a"]) == 4 and "pass^4" in data["sampling"]
    same = compare_runs(store, good, good)
    assert same.verdict == "no significant change"


@pytest.mark.parametrize("engine", ["pool", "hf"])
def test_a_sample_is_the_same_alone_and_in_a_batch_of_32(
    engine: str, store, varied_model_dir: Path
) -> None:
    from harness.generation.local import HFBackend
    from harness.generation.types import GenSettings

    ref = models.resolve(str(varied_model_dir), store)
    backend = HFBackend(ref, batch_size=32, dtype="float32", progress=False, engine=engine)
    convs = [
        [{"role": "user", "content": f"Which module holds f{i}?" * (1 + i % 3)}] for i in range(32)
    ]
    seeds = [sample_seed(0, f"c{i}", i % 4) for i in range(32)]
    settings = GenSettings(max_new_tokens=8, temperature=1.0, top_p=0.95)

    def answers(rows: list[int]) -> dict[int, str]:
        got: dict[int, str] = {}

        def keep(idx: list[int], gens: list) -> None:
            got.update({rows[i]: g.output for i, g in zip(idx, gens, strict=True)})

        backend.generate([convs[i] for i in rows], settings, keep, seeds=[seeds[i] for i in rows])
        return got

    batch = answers(list(range(32)))
    for i in (0, 13, 31):
        assert answers([i]) == {i: batch[i]}
    assert len(set(batch.values())) > 16  # sampled: the seeds make the answers differ
    # another seed for one row changes that row only
    seeds[13] = sample_seed(0, "c13", 99)
    changed = answers(list(range(32)))
    assert changed[13] != batch[13]
    assert all(changed[i] == batch[i] for i in range(32) if i != 13)


def leaning_model(folder: Path, tokenizer_dir: Path, word: str, logit: float) -> Path:
    """A tiny Llama whose next-token law is the same at every step: `word` has logit `logit`,
    every other token 0. A huge bias in the last MLP pins the final hidden state to one direction,
    and the output layer reads only that direction. At temperature 1 it says `word` now and then:
    a model with a known, middling pass share, for verdicts on real sampled generation."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    from tests.conftest import _tiny_llama

    folder.mkdir(parents=True, exist_ok=True)
    _tiny_llama(folder, tokenizer_dir, tie_word_embeddings=False, mlp_bias=True)
    model = LlamaForCausalLM.from_pretrained(folder)
    [token] = AutoTokenizer.from_pretrained(folder).encode(word, add_special_tokens=False)
    with torch.no_grad():
        bias = model.model.layers[-1].mlp.down_proj.bias
        bias.zero_()
        bias[0] = 1e4
        model.lm_head.weight.zero_()
        hidden = model.config.hidden_size
        model.lm_head.weight[token, 0] = logit / (hidden**0.5 * float(model.model.norm.weight[0]))
    model.save_pretrained(folder)
    return folder


LEANING = """\
name: leaning
version: 1
prompt:
  user: "Which module holds {function}?"
generation: {max_new_tokens: 6, temperature: 1.0, samples: 4, seed: SEED}
data:
  test: test.jsonl
rubric:
  good:
    - {id: names-module, type: contains, value: "{module}"}
"""


@pytest.mark.slow
def test_tiny_model_sampled_verdicts_and_gate(
    tmp_path: Path, tiny_tokenizer_dir: Path, tiny_model_dir: Path
) -> None:
    """k = 4 at temperature 1.0 on real generation: the leaning model against itself under other
    seeds is no significant change (gate 0); against a random-weight model it regressed (gate 1)."""
    lean = leaning_model(tmp_path / "lean", tiny_tokenizer_dir, "json", 5.5)
    # 100 cases: at 40 the smallest detectable change (k = 4) is over the 10-point meaningful
    # effect, and the honest A/A verdict is "insufficient evidence"
    cases = [{"id": f"c{i}", "function": f"f{i}", "module": "json"} for i in range(100)]
    db = tmp_path / "t.db"
    runs = {}
    for name, seed, model in (("a", 0, lean), ("a2", 1, lean), ("random", 0, tiny_model_dir)):
        folder = write_suite(tmp_path / f"s{seed}", LEANING.replace("SEED", str(seed)), cases)
        res = cli("eval", str(folder), "--model", str(model), "--json", db=db)
        assert res.returncode == 0, res.stderr
        runs[name] = json.loads(res.stdout)
    share = runs["a"]["sampling"]["pass_share"]["mean"]
    assert 0.5 < share < 1.0, share  # middling: samples differ
    assert runs["random"]["sampling"]["pass_share"]["mean"] < 0.2
    aa = cli("gate", runs["a"]["run_id"], runs["a2"]["run_id"], "--force", "--json", db=db)
    assert aa.returncode == 0, aa.stdout + aa.stderr
    assert json.loads(aa.stdout)["comparison"]["verdict"] == "no significant change"
    worse = cli("gate", runs["a"]["run_id"], runs["random"]["run_id"], "--json", db=db)
    assert worse.returncode == 1, worse.stdout + worse.stderr
    assert json.loads(worse.stdout)["comparison"]["verdict"] == "regressed"
    show = cli("runs", "show", runs["a"]["run_id"], db=db)
    assert "100 cases x 4 samples" in show.stdout and "/4 pass" in show.stdout
