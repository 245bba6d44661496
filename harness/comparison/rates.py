"""The paired comparison of two runs that drew k samples per case: per-case pass shares.

When either run holds several samples per case, `harness.comparison.compare.compare_rows` decides on
the per-case pass shares instead of single pass/fail outcomes, with the same verdict words and rule:

1. The exact sign-flip test on the per-case differences of pass share decides (see
   `harness.comparison.stats` for why this test): p < alpha gives `improved` or `regressed` by the
   sign of the mean difference.
2. Otherwise, if no case's pass share moved, `no significant change`.
3. Otherwise, if the smallest detectable change in mean pass share (`stats.rate_mde`, at this n
   and k and the observed per-case noise, which shrinks as k grows) exceeds the meaningful effect,
   `insufficient evidence`.
4. Otherwise `no significant change`.

A case *regressed* (or improved) when its own pass share moved by more than its own sampling
noise: Fisher's exact test on its passes out of k in each run, at alpha. A small move (4/5 to
3/5) is noise for one case; only the suite-level test pools such moves. A must-pass case is
judged on pass^k: it breaks when every sample passed in run A and not every sample did in B.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from harness.comparison import stats
from harness.comparison.sampling import pass_at_k, pass_hat_k, sample_grades


def has_samples(pairs: list[Any]) -> bool:
    return any(p.a.get("samples") or p.b.get("samples") for p in pairs)


def sample_fields(pair: Any) -> dict[str, Any]:
    """A pair's k answers and grades per side and its pass shares, for `Pair.to_json`."""
    if not (pair.a.get("samples") or pair.b.get("samples")):
        return {}
    out: dict[str, Any] = {}
    for side, row in (("a", pair.a), ("b", pair.b)):
        grades = sample_grades(row)
        out[f"pass_share_{side}"] = sum(g != "bad" for g in grades) / len(grades)
        samples = row.get("samples") or [{"output": row["output"], "grade": row["grade"]}]
        out[f"samples_{side}"] = [{"output": s["output"], "grade": s["grade"]} for s in samples]
    return out


@dataclass
class Rates:
    """What the rate comparison decided, for `Comparison` to carry."""

    k_a: int
    k_b: int
    share_a: list[float]
    share_b: list[float]
    changes: list[str]  # per pair: improved | regressed | unchanged (beyond its own noise)
    pass_share: tuple[float, float, float, float, float]  # a, b, delta, low, high
    verdict: str
    explanation: str
    mde: float
    p_value: float
    must_pass_broken: list[str]
    figures: dict[str, Any] = field(default_factory=dict)  # pass@k, pass^k, flaky: a and b

    def to_json(self) -> dict[str, Any]:
        return {
            "k_a": self.k_a,
            "k_b": self.k_b,
            "test": "sign-flip on per-case pass shares",
            "p_value": self.p_value,
            "mde": None if math.isinf(self.mde) else self.mde,
            **self.figures,
        }


def compare_rates(
    pairs: list[Any], must_pass: set[str], *, alpha: float, meaningful: float, boot: dict[str, int]
) -> Rates:
    grades_a = [sample_grades(p.a) for p in pairs]
    grades_b = [sample_grades(p.b) for p in pairs]
    n_a = np.array([len(g) for g in grades_a])
    n_b = np.array([len(g) for g in grades_b])
    c_a = np.array([sum(x != "bad" for x in g) for g in grades_a])
    c_b = np.array([sum(x != "bad" for x in g) for g in grades_b])
    share_a, share_b = c_a / n_a, c_b / n_b
    lattice = math.lcm(*{int(x) for x in np.concatenate([n_a, n_b])})
    d = np.rint((share_b - share_a) * lattice).astype(np.int64)  # exact: shares are m / n
    p_value = float(stats.sign_flip(d))
    n = len(pairs)
    mean_a, mean_b = float(share_a.mean()), float(share_b.mean())
    delta, low, high = stats.paired_bootstrap(share_a, share_b, **boot)
    churn = float(np.std(share_b - share_a))
    k = int(min(n_a.min(), n_b.min()))
    mde = stats.rate_mde(n, churn, alpha, k=k)
    changes = [
        _case_change(int(ca), int(na), int(cb), int(nb), alpha)
        for ca, na, cb, nb in zip(c_a, n_a, c_b, n_b, strict=True)
    ]
    verdict, explanation = _decide(p_value, d, changes, mde, alpha, meaningful)
    broken = [
        p.case_id
        for p, ca, na, cb, nb in zip(pairs, c_a, n_a, c_b, n_b, strict=True)
        if p.case_id in must_pass and ca == na and cb < nb
    ]
    figures: dict[str, Any] = {}
    for name, fn in ((f"pass@{k}", pass_at_k), (f"pass^{k}", pass_hat_k)):
        fa, fb = fn(n_a, c_a, k), fn(n_b, c_b, k)
        dd, lo, hi = stats.paired_bootstrap(fa, fb, **boot)
        figures[name] = {"a": float(fa.mean()), "b": float(fb.mean()), "delta": dd, "low": lo}
        figures[name]["high"] = hi
    figures["flaky"] = {
        "a": int(sum(1 for c, m in zip(c_a, n_a, strict=True) if 0 < c < m)),
        "b": int(sum(1 for c, m in zip(c_b, n_b, strict=True) if 0 < c < m)),
    }
    return Rates(
        k_a=int(n_a.max()), k_b=int(n_b.max()),
        share_a=share_a.tolist(), share_b=share_b.tolist(), changes=changes,
        pass_share=(mean_a, mean_b, delta, low, high), verdict=verdict,
        explanation=explanation, mde=mde, p_value=p_value, must_pass_broken=broken,
        figures=figures,
    )  # fmt: skip


def _decide(
    p: float, d: np.ndarray, changes: list[str], mde: float, alpha: float, meaningful: float
) -> tuple[str, str]:
    up, down = int((d > 0).sum()), int((d < 0).sum())
    counts = f"pass share rose on {up} cases, fell on {down}"
    if p < alpha:
        word = "improved" if d.sum() > 0 else "regressed"
        return word, f"pass share {word}: {counts}, sign-flip p={p:.3g} < {alpha:g}"
    if up == 0 and down == 0:
        return "no significant change", "no case's pass share changed"
    if mde > meaningful:
        return "insufficient evidence", (
            f"{counts} (sign-flip p={p:.3g}); this sample cannot detect a "
            f"{meaningful * 100:.0f}-point change in pass share"
        )
    return "no significant change", f"{counts}, sign-flip p={p:.3g}"


def _case_change(c_a: int, n_a: int, c_b: int, n_b: int, alpha: float) -> str:
    if c_a * n_b == c_b * n_a or _fisher(c_a, n_a, c_b, n_b) >= alpha:
        return "unchanged"
    return "improved" if c_b * n_a > c_a * n_b else "regressed"


@lru_cache(maxsize=4096)
def _fisher(c_a: int, n_a: int, c_b: int, n_b: int) -> float:
    from scipy.stats import fisher_exact

    table = [[c_a, n_a - c_a], [c_b, n_b - c_b]]
    return float(fisher_exact(table).pvalue)
