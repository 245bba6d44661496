"""How k samples per case trade cost for power: simulated comparisons through the verdict's test.

Each simulated suite draws a pass probability per case from a wide mixture, as real suites look
(40% of cases near 1, 30% near 0, 30% anywhere in between). Run A and run B each draw k samples
per case; B has the same probabilities (A/A: every alarm is false) or a planted 10-point drop in
mean pass share (each probability scaled down). The comparison is
`harness.comparison.stats.sign_flip` on the per-case differences, the test
`harness.comparison.rates` decides with; an alarm is p < alpha (the only step of the verdict rule
that says improved or regressed). The MDE column is `stats.rate_mde` at the noise the A/A
comparisons observed (median over simulations), and the last column how often a drop of exactly that
size is found (the MDE is stated at 80% power under a bound on the noise a change adds, so it reads
80% or a little more).

The second table spends the same answers on more cases or on more samples per case, for a drop
spread over every case and for one that falls on a random fifth of the cases (they lose most of
their pass chance, the rest nothing): samples shrink each case's noise, but not the case-to-case
spread of a real change, so a concentrated change is found sooner with more cases.

    python bench/sampling_sim.py            # the README tables (10,000 simulations per row)
    python bench/sampling_sim.py --sims 2000
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from harness.comparison import stats

ALPHA = 0.05
DROP = 0.10
COLUMNS = (
    "cases n", "samples k", "answers per model", "A/A false alarms", "power, 10-point drop",
    "smallest detectable change", "power at that change",
)  # fmt: skip


def case_probabilities(rng: np.random.Generator, sims: int, n: int) -> np.ndarray:
    kind = rng.choice(3, size=(sims, n), p=[0.4, 0.3, 0.3])
    near_one, near_zero, anywhere = (
        rng.beta(20, 1, (sims, n)),
        rng.beta(1, 20, (sims, n)),
        rng.random((sims, n)),
    )
    return np.where(kind == 0, near_one, np.where(kind == 1, near_zero, anywhere))


MEAN_P = 0.4 * 20 / 21 + 0.3 * 1 / 21 + 0.3 * 0.5  # the mixture's mean pass probability


def simulate(
    n: int, k: int, sims: int, *, drop: float = 0.0, seed: int = 0, share: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """(p-values, mean differences in pass share B - A) of `sims` comparisons. The drop falls
    on a random `share` of the cases (1: every case loses in proportion to its pass chance)."""
    rng = np.random.default_rng([n, k, int(drop * 1000), seed, *([int(share * 100)] * (share < 1))])
    p = case_probabilities(rng, sims, n)
    if share < 1:  # a fifth of the cases, say, lose most of their pass chance; the rest none
        hit = rng.random((sims, n)) < share
        p_b = np.where(hit, p * (1.0 - drop / (share * MEAN_P)), p)
    else:
        p_b = p * (1.0 - drop / MEAN_P)  # expected mean drop: `drop`
    c_a, c_b = rng.binomial(k, p), rng.binomial(k, p_b)
    d = (c_b - c_a).astype(np.int64)
    return stats.sign_flip(d), d.mean(axis=1) / k


def found(p: np.ndarray, d: np.ndarray) -> float:
    """The share of comparisons whose verdict is `regressed`."""
    return float(np.mean((p < ALPHA) & (d < 0)))


def row(n: int, k: int, sims: int) -> dict[str, float]:
    p_aa, d_aa = simulate(n, k, sims)
    p_drop, d_drop = simulate(n, k, sims, drop=DROP)
    rng = np.random.default_rng([n, k, 1])
    # the noise each A/A comparison would have observed: sd of per-case share differences
    p = case_probabilities(rng, 200, n)
    churn = np.std((rng.binomial(k, p) - rng.binomial(k, p)) / k, axis=1)
    return {
        "n": n,
        "k": k,
        "answers": n * k,
        "false_alarm": float(np.mean(p_aa < ALPHA)),
        "power": found(p_drop, d_drop),
        "mde": (mde := float(np.median([stats.rate_mde(n, c, ALPHA, k=k) for c in churn]))),
        # how often a drop of exactly that size is found (the MDE is held to at least 80%)
        "power_at_mde": found(*simulate(n, k, sims, drop=mde, seed=1)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=10_000)
    args = parser.parse_args()
    t0 = time.perf_counter()
    print(f"A/A false alarms and power for a {DROP:.0%} drop, alpha={ALPHA}, ", end="")
    print(f"{args.sims:,} simulations per row\n")
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---:|" * len(COLUMNS))
    for n in (100, 300):
        for k in (1, 5, 10):
            r = row(n, k, args.sims)
            print(
                f"| {n} | {k} | {r['answers']:,} | {r['false_alarm']:.1%} | {r['power']:.1%} "
                f"| {r['mde'] * 100:.1f} points | {r['power_at_mde']:.0%} |"
            )
    print()
    split_table(args.sims)
    print()
    print(f"({time.perf_counter() - t0:.0f}s)")


SPLITS = ((300, 1), (60, 5), (500, 1), (100, 5))  # the same answers, in cases or in samples


def split_table(sims: int) -> None:
    """Power for the same number of answers spent on more cases or on more samples per case,
    for a 10-point drop spread over every case and for one that falls on a fifth of them."""
    print(f"The same answers spent on cases or on samples: power for a {DROP:.0%} drop\n")
    print("| answers per model | cases n | samples k | drop spread over every case | "
          "drop on a fifth of the cases |")  # fmt: skip
    print("|" + "---:|" * 5)
    for n, k in SPLITS:
        spread = found(*simulate(n, k, sims, drop=DROP))
        fifth = found(*simulate(n, k, sims, drop=DROP, share=0.2))
        print(f"| {n * k:,} | {n} | {k} | {spread:.1%} | {fifth:.1%} |")


if __name__ == "__main__":
    main()
