"""Preference pairs from the rubric: sample k answers per prompt of a training split, grade each
with the suite's rubric (judges included), and keep, per prompt, the best and the worst answer
when the rubric tells them apart (bad < good < better; within a grade, an optional tie-break:
fewer failed criteria, or a higher mean score).

Rows are TRL's conversational preference format, `prompt` / `chosen` / `rejected` as messages,
with what decided the pair under `tuneval`: both grades, the criteria the chosen answer passed
and the rejected one failed, the model's fingerprint and each answer's sampling seed.

Answer j to a training row is drawn with the seed every sampled evaluation uses,
`harness.comparison.sampling.sample_seed(suite seed, row id, j)`, one generator per row: it depends
on the row alone (not its batch mates, not --limit), so the same conversation under the same
settings is the same cache entry whether pairs or `eval --samples` asked for it first.

Never from the test split, and never a training prompt that is the same as, or near (the
`data check` rule: Jaccard of character 5-grams >= 0.8), a test prompt: a candidate trained on
those would be graded on its own lessons. Every sample is a cached generation (model
fingerprint, prompt, settings with its seed), committed per batch: a rerun costs nothing and a
killed run resumes where it stopped.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from harness.comparison.sampling import sample_seed
from harness.errors import UserError
from harness.evaluation.runner import conversation, settings_for
from harness.generation.models import ModelRef
from harness.generation.types import Backend, Generation, GenSettings, Messages, cache_key
from harness.grading.grader import RANK, Grader
from harness.store import GenerationRow, Store
from harness.suite.leakage import near_matches, normalize, prompt_texts
from harness.training.data import split_rows

TieBreak = Literal["none", "failed", "score"]
FORMAT = 1  # of the `tuneval` field of a pair row


@dataclass(frozen=True)
class PairOptions:
    split: Literal["train", "validation"] = "train"
    samples: int = 4
    limit: int | None = None  # the first N prompts of the split
    temperature: float = 1.0
    top_p: float = 0.95
    tie_break: TieBreak = "none"
    batch_size: int | None = None
    progress: bool = True
    trust_code: bool = False

    def check(self) -> None:
        if self.split not in ("train", "validation"):
            raise UserError(
                f"--split {self.split}: pairs come from the train or validation split, "
                "never from the test cases"
            )
        if self.samples < 2:
            raise UserError("--samples must be at least 2: a pair needs two answers")
        if self.limit is not None and self.limit < 1:
            raise UserError("--limit must be at least 1")
        if not self.temperature > 0:
            raise UserError("--temperature must be above 0: greedy answers are all the same")
        if not 0 < self.top_p <= 1:
            raise UserError("--top-p must be in (0, 1]")
        if self.tie_break not in ("none", "failed", "score"):
            raise UserError(f"--tie-break {self.tie_break}: none, failed or score")


@dataclass
class PairsResult:
    rows: list[dict[str, Any]]
    prompts: int  # prompts of the split looked at
    dropped: dict[str, int]  # reason -> prompts
    leaked: list[dict[str, Any]]  # the dropped near/exact test prompts, for the reader
    generated: int
    cached: int
    settings: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "pairs": len(self.rows),
            "prompts": self.prompts,
            "dropped": self.dropped,
            "leaked": self.leaked[:5],
            "generated": self.generated,
            "cached": self.cached,
            "settings": self.settings,
        }


def sample_settings(suite_settings: GenSettings, opts: PairOptions) -> GenSettings:
    """The suite's settings with the pairs' temperature and top-p (each row gets its own seed)."""
    return replace(suite_settings, temperature=opts.temperature, top_p=opts.top_p)


def leaked_rows(suite: Any, rows: Sequence[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """row index -> {kind, test_id, jaccard} for each row whose prompt is a test prompt, or near
    one, by the rule `data check` applies."""
    if not suite.cases:
        return {}
    mine = prompt_texts(suite, rows)
    tests = prompt_texts(suite, suite.cases)
    test_norm = {normalize(t): i for i, t in enumerate(tests)}
    out: dict[int, dict[str, Any]] = {}
    for i, text in enumerate(mine):
        j = test_norm.get(normalize(text))
        if j is not None:
            out[i] = {"kind": "exact", "test_id": suite.cases[j]["id"], "jaccard": 1.0}
    rest = [i for i in range(len(mine)) if i not in out]
    for q, j, score in near_matches([mine[i] for i in rest], tests):
        out[rest[q]] = {"kind": "near", "test_id": suite.cases[j]["id"], "jaccard": score}
    return out


def _sample(
    store: Store, ref: ModelRef, convs: list[Messages], settings: GenSettings,
    seeds: list[int], backend: Backend | None, opts: PairOptions,
) -> tuple[list[Generation], int, Backend | None]:  # fmt: skip
    """One answer per conversation under `settings` and its own seed: from the cache, or
    generated and committed to the cache per batch. Returns (answers, how many were generated,
    the backend)."""
    row_settings = [replace(settings, seed=seed) for seed in seeds]
    keys = [cache_key(ref.fingerprint, m, s) for m, s in zip(convs, row_settings, strict=True)]
    hits = store.cached_generations(keys)
    gens: list[Generation | None] = [None] * len(convs)
    for i, k in enumerate(keys):
        if k in hits:
            h = hits[k]
            gens[i] = Generation(h["output"], h["n_tokens"], h["seconds"], h["prompt_tokens"])
    misses = [i for i in range(len(convs)) if gens[i] is None]
    if misses:
        if backend is None:
            from harness.generation.dispatch import backend_for

            backend = backend_for(ref, settings, batch_size=opts.batch_size, progress=opts.progress)

        def on_batch(batch: list[int], out: list[Generation]) -> None:
            rows: list[GenerationRow] = []
            for b, g in zip(batch, out, strict=True):
                i = misses[b]
                gens[i] = g
                rows.append(g.cache_row(keys[i], ref.fingerprint, convs[i], row_settings[i]))
            store.save_generations(rows)

        convs_missed = [convs[i] for i in misses]
        backend.generate(convs_missed, settings, on_batch, seeds=[seeds[i] for i in misses])
    return [g for g in gens if g is not None], len(misses), backend


def _failed(criteria: dict[str, Any]) -> list[str]:
    return sorted(cid for cid, c in criteria.items() if not c["passed"])


def _mean_score(criteria: dict[str, Any]) -> float:
    scores = [float(c["score"]) for c in criteria.values() if c.get("score") is not None]
    if scores:
        return sum(scores) / len(scores)
    return sum(bool(c["passed"]) for c in criteria.values()) / max(1, len(criteria))


def _key(grade: str, criteria: dict[str, Any], tie_break: TieBreak) -> tuple[int, float]:
    """What orders two answers: the grade, then the tie-break within a grade."""
    if tie_break == "failed":
        return RANK[grade], -len(_failed(criteria))
    if tie_break == "score":
        return RANK[grade], round(_mean_score(criteria), 6)
    return RANK[grade], 0.0


def choose(
    answers: Sequence[tuple[str, str, dict[str, Any]]], tie_break: TieBreak
) -> tuple[int, int] | str:
    """(chosen index, rejected index) among (output, grade, criteria) answers, or why no pair:
    the first best and the first worst, so the choice is the same on every rerun."""
    keys = [_key(g, c, tie_break) for _, g, c in answers]
    best = max(range(len(keys)), key=lambda i: (keys[i], -i))
    worst = min(range(len(keys)), key=lambda i: (keys[i], i))
    if keys[best] == keys[worst]:
        return f"same grade ({answers[best][1]})"
    if normalize(answers[best][0]) == normalize(answers[worst][0]):
        return "same answer text"
    return best, worst


def build_pairs(
    suite: Any, ref: ModelRef, store: Store, opts: PairOptions, *, backend: Backend | None = None
) -> PairsResult:
    opts.check()
    suite.check_use(opts.trust_code)
    rows = split_rows(suite, opts.split)[: opts.limit]
    cases = [{**r, "id": r.get("id", f"{opts.split}-{i}")} for i, r in enumerate(rows)]
    leaks = leaked_rows(suite, cases)
    kept = [i for i in range(len(cases)) if i not in leaks]
    convs = [conversation(suite, cases[i]) for i in kept]
    base = settings_for(suite)
    grader = Grader(suite, store, opts.progress)
    per_sample: list[list[tuple[str, str, dict[str, Any]]]] = []
    generated = 0
    settings = sample_settings(base, opts)
    for j in range(opts.samples if convs else 0):
        seeds = [sample_seed(base.seed, str(cases[i]["id"]), j) for i in kept]
        gens, made, backend = _sample(store, ref, convs, settings, seeds, backend, opts)
        generated += made
        graded = grader([g.output for g in gens], [cases[i] for i in kept])
        per_sample.append([(g.output, gr, c) for g, (gr, c) in zip(gens, graded, strict=True)])
    dropped: Counter[str] = Counter()
    if leaks:
        dropped["near or same as a test prompt"] = len(leaks)
    out: list[dict[str, Any]] = []
    for n, i in enumerate(kept):
        answers = [per_sample[j][n] for j in range(opts.samples)]
        picked = choose(answers, opts.tie_break)
        if isinstance(picked, str):
            dropped[picked] += 1
            continue
        c, r = picked
        out.append(_row(suite, ref, opts, cases[i], convs[n], answers, c, r, base))
    settings_json = {
        "samples": opts.samples,
        "temperature": opts.temperature,
        "top_p": opts.top_p,
        "seed": base.seed,  # answer j to row r: harness.comparison.sampling.sample_seed(seed, r, j)
        "tie_break": opts.tie_break,
        "split": opts.split,
        "max_new_tokens": base.max_new_tokens,
    }
    leaked = [{"row": cases[i]["id"], **leaks[i]} for i in sorted(leaks)]
    total = len(convs) * opts.samples
    return PairsResult(
        out, len(cases), dict(dropped), leaked, generated, total - generated, settings_json
    )


def _row(
    suite: Any, ref: ModelRef, opts: PairOptions, case: dict[str, Any], conv: Messages,
    answers: Sequence[tuple[str, str, dict[str, Any]]], c: int, r: int, base: GenSettings,
) -> dict[str, Any]:  # fmt: skip
    (c_out, c_grade, c_crit), (r_out, r_grade, r_crit) = answers[c], answers[r]
    deciding = sorted(cid for cid in c_crit if c_crit[cid]["passed"] and not r_crit[cid]["passed"])

    def side(j: int, grade: str, crit: dict[str, Any]) -> dict[str, Any]:
        return {
            "grade": grade,
            "sample": j,
            "seed": sample_seed(base.seed, str(case["id"]), j),
            "failed": _failed(crit),
            "score": round(_mean_score(crit), 4),
        }

    return {
        "prompt": conv,
        "chosen": [{"role": "assistant", "content": c_out}],
        "rejected": [{"role": "assistant", "content": r_out}],
        "tuneval": {
            "format": FORMAT,
            "suite": suite.name,
            "suite_fingerprint": suite.fingerprint,
            "split": opts.split,
            "row": case["id"],
            "chosen": side(c, c_grade, c_crit),
            "rejected": side(r, r_grade, r_crit),
            "decided_by": deciding if c_grade != r_grade else [f"tie-break: {opts.tie_break}"],
            "model": ref.name,
            "model_fingerprint": ref.fingerprint,
            "temperature": opts.temperature,
            "top_p": opts.top_p,
        },
    }


def write_pairs(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """All at once through a temporary file: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    tmp.replace(path)


# --- human labels as pairs ----------------------------------------------------------------------


def warning_for_test_cases(suites: Sequence[str]) -> str:
    """The grading page's warning, for pairs made of test cases."""
    return (
        f"these pairs are test cases of {', '.join(suites)}. Training on them puts the test set "
        "into the training data: later evaluations on these cases measure memory, not skill. "
        "Move the cases out of the suite's test split, or evaluate on other cases, before "
        "training on them"
    )


def label_pairs(store: Store, run_a: str, run_b: str) -> tuple[list[dict[str, Any]], Counter[str]]:
    """A pair per test case of two runs of one suite that a reviewer labelled on either side and
    whose grades differ, the human grade overriding the automatic one. The rows say they come
    from the test split: the dpo trainer refuses them unless told otherwise."""
    runs = [store.run(r) for r in (run_a, run_b)]
    for rid, run in zip((run_a, run_b), runs, strict=True):
        if run is None:
            raise UserError(f"no run '{rid}' in the store (see `tuneval runs list`)")
    a, b = runs[0], runs[1]
    assert a is not None and b is not None
    if a["suite_fingerprint"] != b["suite_fingerprint"]:
        raise UserError(f"runs {run_a} and {run_b} are of different suites or suite versions")
    human = {
        (row["run_id"], row["case_id"]): row["human"]
        for row in store.labelled_results([run_a, run_b])
    }
    results_b = {r["case_id"]: r for r in store.results(run_b)}
    models = {run_a: a["model"], run_b: b["model"]}

    def side(s: tuple[str, Any, str, bool]) -> dict[str, Any]:
        by = "human" if s[3] else "rubric"
        return {"grade": s[2], "by": by, "run": s[0], "model": models[s[0]]}

    dropped: Counter[str] = Counter()
    rows: list[dict[str, Any]] = []
    for ra in store.results(run_a):
        cid = ra["case_id"]
        rb = results_b.get(cid)
        if rb is None:
            dropped["not in both runs"] += 1
            continue
        if (run_a, cid) not in human and (run_b, cid) not in human:
            dropped["no human label"] += 1
            continue
        sides = [
            (run_a, ra, human.get((run_a, cid), ra["grade"]), (run_a, cid) in human),
            (run_b, rb, human.get((run_b, cid), rb["grade"]), (run_b, cid) in human),
        ]
        if RANK[sides[0][2]] == RANK[sides[1][2]]:
            dropped[f"same grade ({sides[0][2]})"] += 1
            continue
        if normalize(ra["output"]) == normalize(rb["output"]):
            dropped["same answer text"] += 1
            continue
        chosen, rejected = sorted(sides, key=lambda s: -RANK[s[2]])
        rows.append(
            {
                "prompt": [
                    {"role": m["role"], "content": m["content"]} for m in json.loads(ra["prompt"])
                ],
                "chosen": [{"role": "assistant", "content": chosen[1]["output"]}],
                "rejected": [{"role": "assistant", "content": rejected[1]["output"]}],
                "tuneval": {
                    "format": FORMAT,
                    "suite": a["suite"],
                    "suite_fingerprint": a["suite_fingerprint"],
                    "split": "test",  # the trainer refuses these by default
                    "row": cid,
                    "source": "human labels",
                    "chosen": side(chosen),
                    "rejected": side(rejected),
                },
            }
        )
    return rows, dropped
