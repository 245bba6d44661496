"""Evaluation runs: grading, the generation cache, resuming an interrupted run, the real engine
on a tiny random model."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import models
from harness.generate import GenSettings, HFBackend, apply_stop
from harness.runner import evaluate
from harness.suite import load_suite

ANSWERS = {
    "dedent": "textwrap",
    "dumps": "json module",
    "getcwd": "",
    "sqrt": "math",
    "choice": "rand",
}


def oracle(user: str) -> str:
    fn = user.removeprefix("Which module holds ").rstrip("?")
    return ANSWERS.get(fn, "copy")


def test_grades_and_summary(mini_suite: Path, store, tiny_model_dir: Path, fake_backend) -> None:
    ref = models.resolve(str(tiny_model_dir), store)
    result = evaluate(
        load_suite(mini_suite), ref, store, backend=fake_backend(oracle), progress=False
    )
    by_id = {r["case_id"]: r for r in store.results(result.run_id)}
    assert by_id["a"]["grade"] == "better"  # bare "textwrap"
    assert by_id["b"]["grade"] == "good"  # names json, not bare
    assert by_id["c"]["grade"] == "bad"  # empty
    assert by_id["c"]["criteria"]["empty"] == {
        "section": "bad",
        "passed": False,
        "score": None,
        "detail": "empty output",
    }
    assert (
        by_id["e"]["grade"] == "bad"
        and by_id["e"]["criteria"]["names-module"]["detail"] == "missing 'random'"
    )
    assert result.summary["grades"] == {"bad": 2, "good": 1, "better": 3}
    assert result.cached == 0 and result.generated == 6
    assert store.run(result.run_id)["status"] == "complete"


def test_second_run_comes_from_cache(
    mini_suite: Path, store, tiny_model_dir: Path, fake_backend
) -> None:
    ref = models.resolve(str(tiny_model_dir), store)
    suite = load_suite(mini_suite)
    first = evaluate(suite, ref, store, backend=fake_backend(oracle), progress=False)
    backend = fake_backend(lambda u: "must not be called")
    second = evaluate(suite, ref, store, backend=backend, progress=False)
    assert backend.calls == [] and second.cached == 6 and second.generated == 0
    assert second.run_id != first.run_id
    grades = lambda run: [(r["case_id"], r["grade"]) for r in store.results(run)]  # noqa: E731
    assert grades(first.run_id) == grades(second.run_id)


def test_changed_suite_setting_misses_cache(
    mini_suite: Path, store, tiny_model_dir: Path, fake_backend
) -> None:
    ref = models.resolve(str(tiny_model_dir), store)
    evaluate(load_suite(mini_suite), ref, store, backend=fake_backend(oracle), progress=False)
    text = (
        (mini_suite / "suite.yaml").read_text().replace("max_new_tokens: 16", "max_new_tokens: 17")
    )
    (mini_suite / "suite.yaml").write_text(text)
    again = evaluate(
        load_suite(mini_suite), ref, store, backend=fake_backend(oracle), progress=False
    )
    assert again.generated == 6 and again.cached == 0


class Crashing:
    """Answers one batch of 4, then dies as a killed process would."""

    def __init__(self) -> None:
        self.batches = 0

    def render(self, messages):
        return ""

    def generate(self, conversations, settings, on_batch):
        from harness.generate import Generation

        on_batch(
            list(range(4)), [Generation(oracle(c[-1]["content"]), 3) for c in conversations[:4]]
        )
        raise RuntimeError("power cut")


def test_interrupted_run_resumes(
    mini_suite: Path, store, tiny_model_dir: Path, fake_backend
) -> None:
    ref = models.resolve(str(tiny_model_dir), store)
    suite = load_suite(mini_suite)
    with pytest.raises(RuntimeError):
        evaluate(suite, ref, store, backend=Crashing(), progress=False)
    [run] = store.runs()
    assert run["status"] == "failed" and len(store.results(run["id"])) == 4
    backend = fake_backend(oracle)
    again = evaluate(suite, ref, store, backend=backend, progress=False)
    assert again.resumed and again.run_id == run["id"]
    assert backend.calls == [2]  # only the two cases the crash did not reach
    ids = [r["case_id"] for r in store.results(again.run_id)]
    assert sorted(ids) == list("abcdef") and len(ids) == len(set(ids))


def test_limit(mini_suite: Path, store, tiny_model_dir: Path, fake_backend) -> None:
    ref = models.resolve(str(tiny_model_dir), store)
    result = evaluate(
        load_suite(mini_suite), ref, store, limit=2, backend=fake_backend(oracle), progress=False
    )
    assert [r["case_id"] for r in store.results(result.run_id)] == ["a", "b"]


def test_model_fingerprint_memoized_and_sensitive(
    tiny_model_dir: Path, store, tmp_path: Path
) -> None:
    import shutil

    first = models.resolve(str(tiny_model_dir), store).fingerprint
    assert store.one("SELECT COUNT(*) AS n FROM file_hashes")["n"] >= 3
    assert models.resolve(str(tiny_model_dir), store).fingerprint == first
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    assert models.resolve(str(copy), store).fingerprint == first  # same bytes, same model
    (copy / "chat_template.jinja").write_text("{{ messages[0]['content'] }}")
    assert models.resolve(str(copy), store).fingerprint != first


def test_unknown_model_spec(store) -> None:
    from harness.errors import UserError

    with pytest.raises(UserError, match="not found"):
        models.resolve("no/such-model", store)


def test_apply_stop() -> None:
    assert apply_stop("a\n\nb", ["\n\n"]) == "a"
    assert apply_stop("abc. def", ["zz", ". "]) == "abc"
    assert apply_stop("abc", []) == "abc"


def test_tiny_model_batches_match_single(tiny_model_dir: Path, store) -> None:
    """Left padding and length-sorted batches must not change greedy outputs."""
    ref = models.resolve(str(tiny_model_dir), store)
    convs = [[{"role": "user", "content": "word " * n}] for n in (1, 7, 3, 12, 5)]
    settings = GenSettings(max_new_tokens=8, dtype="float32")

    def collect(batch_size: int) -> list[str]:
        out: dict[int, str] = {}
        backend = HFBackend(ref, batch_size=batch_size, dtype="float32", progress=False)
        def keep(idx: list[int], gens: list) -> None:
            out.update(zip(idx, [g.output for g in gens], strict=True))

        backend.generate(convs, settings, keep)
        return [out[i] for i in range(len(convs))]

    single, batched = collect(1), collect(4)
    assert single == batched
    assert all(isinstance(s, str) for s in single)


def test_tiny_model_end_to_end(mini_suite: Path, store, tiny_model_dir: Path) -> None:
    ref = models.resolve(str(tiny_model_dir), store)
    result = evaluate(
        load_suite(mini_suite), ref, store, batch_size=4, dtype="float32", progress=False
    )
    rows = store.results(result.run_id)
    assert len(rows) == 6 and result.generated == 6
    gens = store.query("SELECT n_tokens FROM generations")
    assert len(gens) == 6 and all(0 <= g["n_tokens"] <= 16 for g in gens)
