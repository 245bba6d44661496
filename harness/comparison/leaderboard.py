"""The leaderboard: every model with a complete run on a suite, ranked by Bradley–Terry ratings
fitted on per-case grade outcomes.

For each case and each pair of models that both answered it, the better grade wins (bad < good <
better) and equal grades tie; a tie counts half a win to each side. The ratings maximize the
Bradley–Terry likelihood of those outcomes (Hunter's MM iteration), with one virtual tie between
every pair of models so that a model that wins every comparison still gets a finite rating. They
are shown on the Elo scale, 400 * log10(strength) + 1000, so the ratings average 1000 and a
100-point gap means the higher model wins 64% of its comparisons. The interval is a percentile
bootstrap over cases (all comparisons of a case move together), with a fixed seed.

Each model contributes one run: its complete run with the base prompt on the suite's current files
(those of the newest complete run) with the most cases, the newest among equals. A run with a
prompt variant is an arm of a comparison (`compare --prompt-a`), not another model, and would
otherwise displace the model's base-prompt run. The evaluation of a training checkpoint
(`job@step`, a run with a `train_run`) is a point on a training curve, not a model: it is left
out unless named in `models`. Runs on older suite files are left out and listed, as `compare`
refuses them. So is a run that graded fewer cases than the largest chosen run (an outputs file
that answered 2 of 40 cases, an `eval --limit` run): ranked on its few cases it would sit among
models measured on all of them. Named in `models`, such a run is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from harness.errors import UserError
from harness.grading.grader import RANK

SCALE, BASE, INIT = 400.0, 10.0, 1000.0
MAX_BOOT = 100_000  # resamples: percentiles are steady long before; 10**9 would run for hours
_CHUNK = 1_000_000  # win-matrix cells fitted at once, so memory stays flat however many models


def fit(wins: NDArray[np.float64], iterations: int = 10_000, tol: float = 1e-9) -> Any:
    """Bradley–Terry strengths from win matrices `wins[..., i, j]` (wins of i over j, ties
    already split), one fit per leading index; the geometric mean of each fit is 1."""
    w = np.asarray(wins, dtype=float)
    m = w.shape[-1]
    if m < 2:  # one model has nothing to be compared with: the average strength
        return np.ones(w.shape[:-1])
    off = 1.0 - np.eye(m)
    w = w + 0.5 * off  # the virtual tie between every pair
    games = w + np.swapaxes(w, -1, -2)
    won = w.sum(-1)
    p = np.ones(w.shape[:-1])
    for _ in range(iterations):
        denom = (games / (p[..., :, None] + p[..., None, :])).sum(-1)
        new = won / denom
        new /= np.exp(np.log(new).mean(-1, keepdims=True))
        if np.max(np.abs(new - p)) < tol:
            return new
        p = new
    return p


def elo(strength: Any) -> Any:
    return SCALE * np.log(strength) / np.log(BASE) + INIT


def case_wins(grades: NDArray[np.float64]) -> NDArray[np.float64]:
    """Per case, the win matrix of its grades (NaN where a model has no answer)."""
    g = np.asarray(grades, dtype=float)
    a, b = g[:, :, None], g[:, None, :]
    both = ~np.isnan(a) & ~np.isnan(b)
    out = np.where(both & (a > b), 1.0, 0.0) + np.where(both & (a == b), 0.5, 0.0)
    m = g.shape[1]
    return np.asarray(out * (1.0 - np.eye(m)), dtype=float)


@dataclass
class Entry:
    model: str
    rating: float
    low: float
    high: float
    pass_rate: float
    n: int
    run_id: str
    kind: str

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "rating": round(self.rating, 1),
            "low": round(self.low, 1),
            "high": round(self.high, 1),
            "pass_rate": self.pass_rate,
            "n": self.n,
            "run_id": self.run_id,
            "verified": self.kind != "served",
        }


@dataclass
class Leaderboard:
    suite: str
    entries: list[Entry]
    cases: int
    skipped: list[str] = field(default_factory=list)  # models whose runs are on older suite files
    partial: list[dict[str, Any]] = field(default_factory=list)  # {model, n, of}: fewer cases

    def to_json(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "cases": self.cases,
            "models": [e.to_json() for e in self.entries],
            "skipped": self.skipped,
            "partial": self.partial,
        }


def chosen_runs(
    store: Any, suite: str, models: list[str] | None
) -> tuple[list[Any], list[str], list[dict[str, Any]]]:
    """(one run per model, models left out for older suite files, runs left out for grading
    fewer cases), by the rule above."""
    asked = set(models or [])
    complete = []
    for r in store.runs(suite):
        if r["status"] != "complete" or r["prompt_variant"]:
            continue
        if r["train_run"] is not None and r["model"] not in asked:
            continue
        # An lm-eval-only suite has no test cases of its own: its items are the stored results.
        size = r["n_cases"] or len(store.result_ids(r["id"]))
        if size:
            complete.append({**r, "n_cases": size})
    if not complete:
        raise UserError(f"no complete run on suite '{suite}' (see `tuneval runs list`)")
    current = complete[-1]["suite_fingerprint"]
    per_model: dict[str, Any] = {}
    for r in complete:  # oldest first: among equal sizes the newest wins
        if r["suite_fingerprint"] == current:
            best = per_model.get(r["model"])
            if best is None or r["n_cases"] >= best["n_cases"]:
                per_model[r["model"]] = r
    skipped = sorted({r["model"] for r in complete} - set(per_model))
    if models:
        missing = [m for m in models if m not in per_model]
        if missing:
            raise UserError(
                f"no complete run on the current files of suite '{suite}' for: "
                + ", ".join(missing)
            )
        chosen = [per_model[m] for m in models]
        partial = _partial(chosen)
        if partial:
            p = partial[0]
            raise UserError(
                f"the run of '{p['model']}' graded {p['n']} of the {p['of']} cases the others "
                "have: a leaderboard ranks models on the same cases (grade the rest, or leave "
                "it out of --models)"
            )
        return chosen, [], []
    chosen = list(per_model.values())
    partial = _partial(chosen)
    short = {p["model"] for p in partial}
    return [r for r in chosen if r["model"] not in short], skipped, partial


def _partial(runs: list[Any]) -> list[dict[str, Any]]:
    """The runs that graded fewer cases than the largest of them."""
    most = max(r["n_cases"] for r in runs)
    return [
        {"model": r["model"], "n": r["n_cases"], "of": most} for r in runs if r["n_cases"] < most
    ]


def leaderboard(
    store: Any, suite: str, models: list[str] | None = None, *, n_boot: int = 1000, seed: int = 0
) -> Leaderboard:
    if not 1 <= n_boot <= MAX_BOOT:
        raise UserError(f"--n-boot must be between 1 and {MAX_BOOT:,}, not {n_boot:,}")
    runs, skipped, partial = chosen_runs(store, suite, models)
    results = [store.results(r["id"]) for r in runs]
    case_ids = list(dict.fromkeys(row["case_id"] for rows in results for row in rows))
    index = {c: i for i, c in enumerate(case_ids)}
    grades = np.full((len(case_ids), len(runs)), np.nan)
    for j, rows in enumerate(results):
        for row in rows:
            grades[index[row["case_id"]], j] = RANK[row["grade"]]
    ratings = elo(fit(case_wins(grades).sum(0)))
    low, high = _bootstrap(grades, n_boot, seed)
    entries = []
    for j, (run, rows) in enumerate(zip(runs, results, strict=True)):
        passed = sum(1 for row in rows if row["grade"] != "bad")
        entries.append(
            Entry(
                run["model"],
                float(ratings[j]),
                float(low[j]),
                float(high[j]),
                passed / len(rows) if rows else 0.0,
                len(rows),
                run["id"],
                run["model_kind"],
            )  # fmt: skip
        )
    entries.sort(key=lambda e: (-e.rating, e.model))
    return Leaderboard(suite, entries, len(case_ids), skipped, partial)


def _bootstrap(grades: NDArray[np.float64], n_boot: int, seed: int) -> tuple[Any, Any]:
    """2.5th and 97.5th percentile ratings over cases resampled with replacement. Cases with the
    same grades across models are interchangeable, so we draw counts of each distinct profile."""
    m = grades.shape[1]
    if m < 2 or n_boot < 1:
        flat = elo(np.ones(m))
        return flat, flat
    filled = np.nan_to_num(grades, nan=-1.0)
    profiles, counts = np.unique(filled, axis=0, return_counts=True)
    profiles = np.where(profiles < 0, np.nan, profiles)
    per_profile = case_wins(profiles).reshape(len(profiles), m * m)
    rng = np.random.default_rng(seed)
    step = max(1, _CHUNK // (m * m))
    ratings = np.concatenate([
        elo(fit((draws @ per_profile).reshape(len(draws), m, m)))
        for draws in (
            rng.multinomial(len(grades), counts / len(grades), size=min(step, n_boot - start))
            for start in range(0, n_boot, step)
        )
    ])  # fmt: skip
    low, high = np.quantile(ratings, [0.025, 0.975], axis=0)
    return low, high
