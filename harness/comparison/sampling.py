"""k sampled answers per case: the seed of each sample, and what k graded samples say about a case.

`sample_seed(suite_seed, case_id, j)` is the one place a sample's seed comes from. It depends on
nothing else (not the batch, not the other cases, not k), so a rerun asks for the same answers
(cache hits), raising k from 5 to 10 reuses the first 5, and anything else that draws k answers
per prompt (preference pairs, say) can draw the same ones.

Per case, from n graded samples of which c pass (good or better):
- `pass share` c / n, the case's estimated pass probability;
- `pass@k`, the chance that at least one of k samples passes, by the unbiased estimator of
  Chen et al. 2021 (1 - C(n - c, k) / C(n, k)), for k <= n;
- `pass^k`, the chance that all k pass (consistency), by the matching unbiased estimator
  C(c, k) / C(n, k); at k = n it is 1 when every sample passed;
- the majority grade (ties go to the lower grade: a case is as good as it reliably is) and the
  spread (how many grade steps lie between its worst and best sample).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from harness.grading.grader import GRADES, RANK

MAX_SAMPLES = 1000


def sample_seed(suite_seed: int, case_id: str, j: int) -> int:
    """The seed of sample j of a case: 63 bits, so it fits torch generators and SQLite."""
    digest = hashlib.sha256(f"{suite_seed}\0{case_id}\0{j}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def pass_at_k(n: ArrayLike, c: ArrayLike, k: int) -> Any:
    """Unbiased pass@k from n samples with c passing (Chen et al. 2021), vectorised over n, c.

    1 - C(n-c, k) / C(n, k) written as 1 - prod_{i=n-c+1}^{n} (1 - k / i), the product form that
    stays exact in floating point for large n."""
    n_arr, c_arr = np.asarray(n, dtype=np.int64), np.asarray(c, dtype=np.int64)
    _check(n_arr, c_arr, k)
    i = np.arange(1, int(n_arr.max(initial=1)) + 1)
    # factor (1 - k/i) for i in (n-c, n]; 1 elsewhere
    use = (i > (n_arr - c_arr)[..., None]) & (i <= n_arr[..., None])
    out = 1.0 - np.prod(np.where(use, 1.0 - k / i, 1.0), axis=-1)
    return float(out) if out.ndim == 0 else out


def pass_hat_k(n: ArrayLike, c: ArrayLike, k: int) -> Any:
    """Unbiased pass^k (all k of k fresh samples pass) from n samples with c passing:
    C(c, k) / C(n, k) = prod_{i<k} (c - i) / (n - i)."""
    n_arr, c_arr = np.asarray(n, dtype=np.int64), np.asarray(c, dtype=np.int64)
    _check(n_arr, c_arr, k)
    i = np.arange(k)
    out = np.prod(np.clip(c_arr[..., None] - i, 0, None) / (n_arr[..., None] - i), axis=-1)
    return float(out) if out.ndim == 0 else out


def _check(n: np.ndarray, c: np.ndarray, k: int) -> None:
    if k < 1 or np.any(n < k) or np.any(c < 0) or np.any(c > n):
        raise ValueError("need 1 <= k <= n and 0 <= c <= n")


def majority_grade(grades: Sequence[str]) -> str:
    """The most frequent grade; a tie goes to the lowest of the tied grades."""
    counts = Counter(grades)
    top = max(counts.values())
    return min((g for g in counts if counts[g] == top), key=lambda g: RANK[g])


def case_outcome(grades: Sequence[str]) -> dict[str, Any]:
    """What a case's graded samples say: pass share, pass@k and pass^k at k = n, majority grade,
    grade counts and spread, and whether it is flaky (some samples pass, some fail)."""
    n = len(grades)
    c = sum(1 for g in grades if g != "bad")
    ranks = [RANK[g] for g in grades]
    return {
        "k": n,
        "passes": c,
        "pass_share": c / n,
        "pass_at_k": pass_at_k(n, c, n),
        "pass_hat_k": pass_hat_k(n, c, n),
        "majority": majority_grade(grades),
        "grades": {g: sum(1 for x in grades if x == g) for g in GRADES},
        "spread": max(ranks) - min(ranks),
        "flaky": 0 < c < n,
    }


def sample_grades(row: Mapping[str, Any]) -> list[str]:
    """A result row's sample grades: its samples' grades, or its one grade (a run of k = 1)."""
    samples = row.get("samples")
    return [s["grade"] for s in samples] if samples else [str(row["grade"])]


def suite_outcomes(rows: Sequence[Mapping[str, Any]], n_boot: int = 2000) -> dict[str, Any]:
    """Suite-level means of the per-case figures, each with a 95% bootstrap interval over cases."""
    from harness.comparison import stats

    cases = [case_outcome(sample_grades(r)) for r in rows]
    if not cases:
        return {"n": 0}
    out: dict[str, Any] = {"n": len(cases), "k": max(c["k"] for c in cases)}
    for figure in ("pass_share", "pass_at_k", "pass_hat_k", "flaky"):
        mean, low, high = stats.bootstrap_mean([float(c[figure]) for c in cases], n_boot=n_boot)
        out[figure] = {"mean": mean, "low": low, "high": high}
    out["flaky_cases"] = sum(1 for c in cases if c["flaky"])
    out["majority"] = {g: sum(1 for c in cases if c["majority"] == g) for g in GRADES}
    return out


def case_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """A sampled case's figures and its samples, for `runs show` and `runs export`; {} for a
    case of one answer."""
    samples = row.get("samples")
    if not samples:
        return {}
    outcome = case_outcome([s["grade"] for s in samples])
    keep = ("pass_share", "pass_at_k", "pass_hat_k", "spread", "flaky")
    return {
        "k": outcome["k"],
        **{key: outcome[key] for key in keep},
        "samples": [
            {
                "j": s["j"],
                "output": s["output"],
                "grade": s["grade"],
                "failed": [cid for cid, c in s["criteria"].items() if not c["passed"]],
            }
            for s in samples
        ],
    }
