"""Evaluation runs: grading, the generation cache, resuming an interrupted run, the real engine
on a tiny random model."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.evaluation.runner import EvalOptions, evaluate_suite
from harness.generation import models
from harness.generation.local import HFBackend, render
from harness.generation.types import GenSettings, apply_stop
from harness.suite.loader import load_suite

ANSWERS = {
    "dedent": "textwrap",
    "dumps": "json module",
    "getcwd": "",
    "sqrt": "math",
    "choice": "rand",
}


def run_eval(suite, ref, store, *, backend=None, **options):
    """evaluate_suite with its options as keywords, as the tests write them."""
    options.setdefault("progress", False)
    return evaluate_suite(suite, ref, store, EvalOptions(**options), backend=backend)


def oracle(user: str) -> str:
    fn = user.removeprefix("Which module holds ").rstrip("?")
    return ANSWERS.get(fn, "copy")


def test_grades_and_summary(mini_suite: Path, store, tiny_model_dir: Path, fake_backend) -> None:
    ref = models.resolve(str(tiny_model_dir), store)
    result = run_eval(
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
    first = run_eval(suite, ref, store, backend=fake_backend(oracle), progress=False)
    backend = fake_backend(lambda u: "must not be called")
    second = run_eval(suite, ref, store, backend=backend, progress=False)
    assert backend.calls == [] and second.cached == 6 and second.generated == 0
    assert second.run_id != first.run_id
    grades = lambda run: [(r["case_id"], r["grade"]) for r in store.results(run)]  # noqa: E731
    assert grades(first.run_id) == grades(second.run_id)


def test_warm_eval_loads_no_model(
    mini_suite: Path, store, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's warm row: the same eval again takes every answer from the cache and never
    loads the model (the real engine, not the fake backend)."""
    ref = models.resolve(str(tiny_model_dir), store)
    suite = load_suite(mini_suite)
    first = run_eval(suite, ref, store, progress=False)
    assert first.generated == 6

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a warm eval loaded the model")

    monkeypatch.setattr(models, "load", refuse)
    second = run_eval(suite, ref, store, progress=False)
    assert second.cached == 6 and second.generated == 0
    grades = lambda run: [(r["case_id"], r["grade"]) for r in store.results(run)]  # noqa: E731
    assert grades(first.run_id) == grades(second.run_id)


def test_changed_suite_setting_misses_cache(
    mini_suite: Path, store, tiny_model_dir: Path, fake_backend
) -> None:
    ref = models.resolve(str(tiny_model_dir), store)
    run_eval(load_suite(mini_suite), ref, store, backend=fake_backend(oracle), progress=False)
    text = (
        (mini_suite / "suite.yaml").read_text().replace("max_new_tokens: 16", "max_new_tokens: 17")
    )
    (mini_suite / "suite.yaml").write_text(text)
    again = run_eval(
        load_suite(mini_suite), ref, store, backend=fake_backend(oracle), progress=False
    )
    assert again.generated == 6 and again.cached == 0


class Crashing:
    """Answers one batch of 4, then dies as a killed process would."""

    def __init__(self) -> None:
        self.batches = 0

    def generate(self, conversations, settings, on_batch):
        from harness.generation.types import Generation

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
        run_eval(suite, ref, store, backend=Crashing(), progress=False)
    [run] = store.runs()
    assert run["status"] == "failed" and len(store.results(run["id"])) == 4
    backend = fake_backend(oracle)
    again = run_eval(suite, ref, store, backend=backend, progress=False)
    assert again.resumed and again.run_id == run["id"]
    assert backend.calls == [2]  # only the two cases the crash did not reach
    ids = [r["case_id"] for r in store.results(again.run_id)]
    assert sorted(ids) == list("abcdef") and len(ids) == len(set(ids))


def test_a_run_resumed_on_another_engine_names_both(
    mini_suite: Path, store, tiny_model_dir: Path, fake_backend
) -> None:
    """The engine is noted with a process's first fresh answers: a kill does not lose it."""
    ref = models.resolve(str(tiny_model_dir), store)
    suite = load_suite(mini_suite)
    crashing = Crashing()
    crashing.engine_ran = "pool"  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError):
        run_eval(suite, ref, store, backend=crashing)
    [run] = store.runs()
    assert run["settings"]["engine"] == "pool"
    resumer = fake_backend(oracle)
    resumer.engine_ran = "hf"  # type: ignore[attr-defined]
    run_eval(suite, ref, store, backend=resumer)
    assert store.run(run["id"])["settings"]["engine"] == "pool+hf"


@pytest.mark.parametrize("engine", ["pool", "static", "hf", "auto"])
def test_runs_show_names_the_engine_that_ran(
    engine: str, tmp_path: Path, mini_suite: Path, tiny_model_dir: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """TUNEVAL_ENGINE forces each local engine (static as well: forced, it runs on the CPU);
    `auto` is what a plain eval picks: static on CUDA, pool on the CPU. A second eval takes
    every answer from the cache: no engine ran."""
    import json

    import torch

    from tests.conftest import run_cli

    expected = {"auto": "static" if torch.cuda.is_available() else "pool"}.get(engine, engine)
    monkeypatch.setenv("TUNEVAL_ENGINE", engine)
    db = str(tmp_path / "t.db")
    args = ("eval", str(mini_suite), "--model", str(tiny_model_dir), "--limit", "2")
    code, out, err = run_cli(*args, "--db", db, "--json", capsys=capsys)
    assert code == 0, err
    first = json.loads(out)["run_id"]
    code, out, err = run_cli(*args, "--db", db, "--json", capsys=capsys)
    assert code == 0 and json.loads(out)["generated"] == 0, err
    again = json.loads(out)["run_id"]

    def shown(run_id: str) -> str:
        code, out, err = run_cli("runs", "show", run_id, "--db", db, "--json", capsys=capsys)
        assert code == 0, err
        return json.loads(out)["engine"]

    assert (shown(first), shown(again)) == (expected, "cache")
    code, out, _ = run_cli("runs", "show", first, "--db", db, capsys=capsys)
    assert code == 0 and f"engine {expected}" in " ".join(out.split())


def test_limit(mini_suite: Path, store, tiny_model_dir: Path, fake_backend) -> None:
    ref = models.resolve(str(tiny_model_dir), store)
    result = run_eval(
        load_suite(mini_suite), ref, store, limit=2, backend=fake_backend(oracle), progress=False
    )
    assert [r["case_id"] for r in store.results(result.run_id)] == ["a", "b"]


def test_model_fingerprint_memoized_and_sensitive(
    tiny_model_dir: Path, store, tmp_path: Path
) -> None:
    import shutil

    first = models.resolve(str(tiny_model_dir), store).fingerprint
    weights = tiny_model_dir / "model.safetensors"
    st = weights.stat()
    assert store.cached_hash(str(weights.resolve()), st.st_size, st.st_mtime_ns)
    assert models.resolve(str(tiny_model_dir), store).fingerprint == first
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    assert models.resolve(str(copy), store).fingerprint == first  # same bytes, same model
    (copy / "chat_template.jinja").write_text("{{ messages[0]['content'] }}")
    assert models.resolve(str(copy), store).fingerprint != first


def test_unknown_model_spec(store) -> None:
    from harness.errors import UserError

    # The tests run offline (conftest): a Hub id with no cached snapshot is one located line.
    with pytest.raises(
        UserError,
        match="'no/such-model' at revision main: not a local folder.*holds no snapshot of it",
    ):
        models.resolve("no/such-model", store)


def test_apply_stop() -> None:
    assert apply_stop("a\n\nb", ["\n\n"]) == "a"
    assert apply_stop("abc. def", ["zz", ". "]) == "abc"
    assert apply_stop("abc", []) == "abc"


@pytest.mark.parametrize("engine", ["pool", "static", "hf"])
def test_tiny_model_batches_match_single(varied_model_dir: Path, store, engine: str) -> None:
    """Left padding and length-sorted batches must not change greedy outputs."""
    ref = models.resolve(str(varied_model_dir), store)
    convs = [[{"role": "user", "content": "word " * n}] for n in (1, 7, 3, 12, 5)]
    settings = GenSettings(max_new_tokens=8, dtype="float32")

    def collect(batch_size: int) -> list[str]:
        out: dict[int, str] = {}
        backend = HFBackend(
            ref, batch_size=batch_size, dtype="float32", progress=False, engine=engine
        )

        def keep(idx: list[int], gens: list) -> None:
            out.update(zip(idx, [g.output for g in gens], strict=True))

        backend.generate(convs, settings, keep)
        return [out[i] for i in range(len(convs))]

    single, batched = collect(1), collect(4)
    assert single == batched
    assert len(set(single)) == len(single)  # the answers differ: the check has teeth


def test_engine_override_is_checked(
    varied_model_dir: Path, store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mistyped TUNEVAL_ENGINE, or the greedy-only static engine asked to sample, is a clear
    error rather than a silent fallback or greedy answers to a sampling suite."""
    from harness.errors import UserError

    ref = models.resolve(str(varied_model_dir), store)
    backend = HFBackend(ref, dtype="float32", progress=False)
    greedy, sampling = GenSettings(), GenSettings(temperature=0.7)
    monkeypatch.setenv("TUNEVAL_ENGINE", "statc")
    with pytest.raises(UserError, match="TUNEVAL_ENGINE='statc'"):
        backend.choose_engine(greedy)
    monkeypatch.setenv("TUNEVAL_ENGINE", "static")
    assert backend.choose_engine(greedy) == "static"
    with pytest.raises(UserError, match="greedily only"):
        backend.choose_engine(sampling)
    monkeypatch.setenv("TUNEVAL_ENGINE", "pool")
    assert backend.choose_engine(sampling) == "pool"


def test_tiny_model_end_to_end(mini_suite: Path, store, tiny_model_dir: Path) -> None:
    ref = models.resolve(str(tiny_model_dir), store)
    result = run_eval(
        load_suite(mini_suite), ref, store, batch_size=4, dtype="float32", progress=False
    )
    rows = store.results(result.run_id)
    assert len(rows) == 6 and result.generated == 6
    assert all(0 <= r["output_tokens"] <= 16 and r["prompt_tokens"] > 0 for r in rows)
    again = run_eval(load_suite(mini_suite), ref, store, batch_size=4, dtype="float32")
    cached = store.results(again.run_id)
    assert again.generated == 0 and [r["output_tokens"] for r in cached] == [
        r["output_tokens"] for r in rows
    ]  # the cache keeps the cost of each answer
    assert [r["prompt_tokens"] for r in cached] == [r["prompt_tokens"] for r in rows]


def _generate(ref, convs, settings, **backend_kw) -> tuple[list[str], list[int]]:
    """Outputs in input order, and the order in which indices were handed back."""
    out: dict[int, str] = {}
    seen: list[int] = []
    backend = HFBackend(ref, dtype="float32", progress=False, **backend_kw)

    def keep(idx: list[int], gens: list) -> None:
        seen.extend(idx)
        out.update(zip(idx, [g.output for g in gens], strict=True))

    backend.generate(convs, settings, keep)
    return [out[i] for i in range(len(convs))], seen


def _staggered(ref, convs, max_new: int) -> GenSettings:
    """Settings with a stop string that ends some answers early and not others, so that rows leave
    the pool at different steps."""
    plain = GenSettings(max_new_tokens=max_new, dtype="float32")
    free, _ = _generate(ref, convs, plain, engine="hf", batch_size=1)
    chars = sorted({c for t in free for c in t[1:8]}, key=lambda c: -sum(c in t for t in free))
    stop = next(c for c in chars if 0 < sum(c in t[1:] for t in free) < len(free))
    return GenSettings(max_new_tokens=max_new, stop=(stop,), dtype="float32")


@pytest.mark.parametrize("engine", ["pool", "static"])
@pytest.mark.parametrize("shape", ["grouped", "multi-head"])
def test_engines_match_model_generate(
    varied_model_dir: Path, mha_model_dir: Path, store, engine: str, shape: str
) -> None:
    """Rows leaving at stop strings (and, in the pool, prompts joining mid-flight) must not change
    greedy output: both engines answer exactly as `model.generate` does, with grouped and with
    full multi-head attention."""
    folder = varied_model_dir if shape == "grouped" else mha_model_dir
    ref = models.resolve(str(folder), store)
    convs = [[{"role": "user", "content": "word " * n + str(n)}] for n in range(1, 25, 2)]
    settings = _staggered(ref, convs, 12)
    reference, _ = _generate(ref, convs, settings, engine="hf", batch_size=1)
    pooled, seen = _generate(ref, convs, settings, batch_size=4, engine=engine)
    assert sorted(seen) == list(range(len(convs)))  # every case handed back exactly once
    assert pooled == reference
    assert len({len(t) for t in pooled}) > 1


def test_continuous_pool_trims_its_cache(varied_model_dir: Path, store, monkeypatch) -> None:
    """Columns no live row uses are cut: the cache spans a prompt and its answer, not the run."""
    from harness.generation import pool

    widths: list[int] = []
    step = pool.Pool._step

    def spy(self) -> None:
        step(self)
        widths.append(self.mask.shape[1])

    monkeypatch.setattr(pool.Pool, "_step", spy)
    ref = models.resolve(str(varied_model_dir), store)
    convs = [[{"role": "user", "content": "word " * (n % 7) + str(n)}] for n in range(40)]
    settings = _staggered(ref, convs, 8)
    _generate(ref, convs, settings, batch_size=3)
    tok = models.load_tokenizer(ref)
    longest = max(len(tok(render(tok, c))["input_ids"]) for c in convs)
    assert widths and max(widths) <= longest + settings.max_new_tokens


def test_sampling_is_per_case_and_seeded(varied_model_dir: Path, store) -> None:
    ref = models.resolve(str(varied_model_dir), store)
    convs = [[{"role": "user", "content": "word " * n}] for n in (2, 9, 4, 6, 1)]
    hot = GenSettings(max_new_tokens=10, temperature=1.0, top_p=0.9, seed=3, dtype="float32")
    alone, _ = _generate(ref, convs, hot, batch_size=1)
    together, _ = _generate(ref, convs, hot, batch_size=5)
    assert alone == together  # a sampled answer does not depend on its batch mates
    other, _ = _generate(ref, convs, GenSettings(**{**hot.__dict__, "seed": 4}), batch_size=5)
    assert other != together
    greedy, _ = _generate(ref, convs, GenSettings(max_new_tokens=10, dtype="float32"))
    assert greedy != together


def test_packed_linears_compute_the_same(varied_model_dir: Path, store) -> None:
    import torch

    from harness.generation.kernels import PackedLinear, pack_linears

    ref = models.resolve(str(varied_model_dir), store)
    model, tok = models.load(ref, "float32")
    ids = tok(["a few words of input", "and more"], return_tensors="pt", padding=True)
    with torch.no_grad():
        before = model(**ids).logits
        n = pack_linears(model, 4)
        after = model(**ids).logits
    if n == 0:
        pytest.skip("no oneDNN in this torch build")
    assert n == 2 * 7 + 1  # q, k, v, o, gate, up, down per layer, and the lm_head
    assert any(isinstance(m, PackedLinear) for m in model.modules())
    assert torch.allclose(before, after, atol=1e-4)


def test_packed_and_plain_weights_answer_alike(varied_model_dir: Path, store) -> None:
    ref = models.resolve(str(varied_model_dir), store)
    convs = [[{"role": "user", "content": "word " * n}] for n in (3, 8, 1, 5)]
    settings = GenSettings(max_new_tokens=10, dtype="float32")
    plain, _ = _generate(ref, convs, settings, pack_weights=False)
    for engine in ("pool", "hf"):
        packed, _ = _generate(ref, convs, settings, engine=engine)
        assert packed == plain


@pytest.mark.slow  # the only test here that needs the packaged model (dequantized once)
def test_packaged_model_folder_is_plain_safetensors(packaged_model_dir: Path) -> None:
    """Dequantized from the GGUF once; nothing left that marks it as quantized."""
    import json

    config = json.loads((packaged_model_dir / "config.json").read_text())
    assert "quantization_config" not in config
    assert (packaged_model_dir / "model.safetensors").is_file()
