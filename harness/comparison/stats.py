"""Paired statistics for comparing two runs on the same cases. Pure numpy/scipy.

Every function that takes counts also takes numpy arrays of counts, so the simulation tests can
run thousands of comparisons at once through exactly the code the verdict uses.

- `mcnemar(b01, b10)`: exact two-sided McNemar test on pass/fail, i.e. a binomial test of the
  discordant pairs against 1/2 (b01 = fail -> pass, b10 = pass -> fail).
- `sign_test(improved, regressed)`: exact two-sided sign test on ordinal grades (ties dropped).
- `paired_bootstrap(a, b)`: percentile interval for mean(b) - mean(a), resampling cases (pairs);
  `bootstrap_mean(x)` the same for one sample (a preference share); `ratio_bootstrap(a, b)`
  for mean(b) / mean(a) (what an answer costs, B against A).
- `cohen_kappa(pairs)`: agreement beyond chance between two raters (a judge and human labels).
- `mcnemar_power` / `mde`: power of the exact McNemar test and the smallest detectable effect.
- `sign_flip(d)`: exact two-sided sign-flip (permutation) test on paired integer differences,
  the test of per-case pass shares when a run draws k samples per case; `rate_mde` beside it.

Why the sign-flip test for k samples per case. Under "A and B are the same model" the k answers
of A and the k of B on one case are draws from one distribution, so the difference of the two
pass shares is symmetric about 0 whatever that case's pass probability is: flipping its sign is
the exact null, case by case, with no assumption about how pass probabilities vary across cases
(real suites put most cases near 0 or 1). The test is exact at any n (its false-alarm rate never
exceeds alpha), it weighs how far a case's share moved (a rank test would not: Wilcoxon ranks
|d| and drops the 5/5 -> 0/5 vs 5/5 -> 4/5 distinction into ranks with heavy ties), and at k = 1
it is exactly the McNemar test the greedy verdict uses, so the two verdicts agree where they
meet. A paired bootstrap of the mean difference is reported as the interval, not used to decide:
it is anti-conservative at small n. Differences are integers on the lattice 1/L (L the lcm of
the two runs' k), so the null distribution of the sum is a product of n two-point laws, computed
exactly by one FFT per comparison (and vectorised over simulated comparisons).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats as sps

POWER = 0.8  # the power at which the minimum detectable effect is stated


def binom_two_sided(k: ArrayLike, n: ArrayLike) -> Any:
    """Exact two-sided p-value of k successes in n trials under p = 1/2 (1.0 when n = 0).

    With p = 1/2 the distribution is symmetric, so the two-sided p is twice the smaller tail,
    which is what `scipy.stats.binomtest(k, n).pvalue` computes one value at a time.
    """
    k_arr, n_arr = np.asarray(k), np.asarray(n)
    tail = np.minimum(k_arr, n_arr - k_arr)
    p = np.minimum(1.0, 2.0 * sps.binom.cdf(tail, n_arr, 0.5))
    p = np.where(n_arr == 0, 1.0, p)
    return float(p) if p.ndim == 0 else p


def mcnemar(b01: ArrayLike, b10: ArrayLike) -> Any:
    """Exact McNemar p-value: only discordant pairs carry information about a change."""
    return binom_two_sided(b01, np.asarray(b01) + np.asarray(b10))


def sign_test(improved: ArrayLike, regressed: ArrayLike) -> Any:
    """Exact sign test on paired ordinal grades: cases whose grade did not move are ties."""
    return binom_two_sided(improved, np.asarray(improved) + np.asarray(regressed))


def paired_bootstrap(
    a: ArrayLike, b: ArrayLike, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """(delta, low, high): mean(b) - mean(a) with a percentile interval over resampled pairs.

    With no discordant pairs every resample has delta 0 and the interval collapses to [0, 0];
    the verdict does not rely on it for that reason (see `harness.comparison.compare`).
    """
    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    if d.ndim != 1 or d.size == 0:
        raise ValueError("paired_bootstrap needs two equal-length, non-empty 1-D samples")
    return bootstrap_mean(d, n_boot=n_boot, seed=seed, level=level)


def bootstrap_mean(
    x: ArrayLike, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """(mean, low, high): a percentile interval for the mean over resampled cases.

    Resampling n values with replacement only changes how often each distinct value occurs, so
    we draw those counts from one multinomial instead of n * n_boot indices: the same
    distribution, and constant memory for any n.
    """
    d = np.asarray(x, dtype=float)
    if d.ndim != 1 or d.size == 0:
        raise ValueError("bootstrap_mean needs a non-empty 1-D sample")
    values, counts = np.unique(d, return_counts=True)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(d.size, counts / d.size, size=n_boot)
    means = draws @ values / d.size
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(d.mean()), float(low), float(high)


def ratio_bootstrap(
    a: ArrayLike, b: ArrayLike, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float] | None:
    """(ratio, low, high): mean(b) / mean(a) with a percentile interval over resampled pairs;
    None when mean(a) is 0. Resamples where A's mean is 0 are dropped (they have no ratio)."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.ndim != 1 or x.shape != y.shape or x.size == 0:
        raise ValueError("ratio_bootstrap needs two equal-length, non-empty 1-D samples")
    if x.sum() <= 0:
        return None
    rng = np.random.default_rng(seed)
    ratios = []
    chunk = max(1, 2_000_000 // x.size)  # resampled indices held at once: bounded memory
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        weights = rng.multinomial(x.size, np.full(x.size, 1.0 / x.size), size=size)
        sa, sb = weights @ x, weights @ y
        ratios.append(sb[sa > 0] / sa[sa > 0])
    r = np.concatenate(ratios)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(r, [tail, 1.0 - tail])
    return float(y.sum() / x.sum()), float(low), float(high)


def cohen_kappa(pairs: Sequence[tuple[Any, Any]]) -> float | None:
    """Agreement beyond chance between two raters' labels; None where undefined (fewer than
    two pairs, or both raters always gave one and the same label)."""
    n = len(pairs)
    if n < 2:
        return None
    labels = {x for pair in pairs for x in pair}
    po = sum(1 for x, y in pairs if x == y) / n
    pe = sum(
        (sum(1 for x, _ in pairs if x == g) / n) * (sum(1 for _, y in pairs if y == g) / n)
        for g in labels
    )
    return None if pe >= 1.0 else (po - pe) / (1.0 - pe)


def _critical_low(k: NDArray[np.int64], alpha: float) -> NDArray[np.int64]:
    """For each number of discordant pairs k, the largest count c with p(c, k) < alpha (-1: none).

    The test rejects when min(b01, b10) <= c.
    """
    c = sps.binom.ppf(alpha / 2.0, k, 0.5).astype(np.int64)
    # ppf is the first count whose cdf reaches alpha/2; step back and forth so the exact
    # two-sided p decides, not floating-point ties at the boundary.
    c = np.maximum(c, 0)
    too_high = binom_two_sided(c, k) >= alpha
    c = np.where(too_high, c - 1, c)
    fits_next = (c + 1 < k - c - 1) & (binom_two_sided(c + 1, k) < alpha)
    return np.where(fits_next, c + 1, c)


def mcnemar_power(n: int, delta: float, discordance: float, alpha: float = 0.05) -> float:
    """Probability that the exact McNemar test at `alpha` rejects, for n pairs with a true
    pass-rate change `delta` and a true share `discordance` of cases that change pass/fail.

    Exact: the number of discordant pairs is Binomial(n, discordance), and given k of them the
    count in the direction of the change is Binomial(k, (discordance + |delta|) / (2 discordance)).
    """
    delta = abs(delta)
    if n <= 0 or discordance <= 0:
        return 0.0
    if delta > discordance + 1e-12 or discordance > 1:
        raise ValueError("need |delta| <= discordance <= 1")
    k = np.arange(n + 1)
    c = _critical_low(k, alpha)
    share = min(1.0, (discordance + delta) / (2.0 * discordance))
    ok = c >= 0
    reject = np.zeros(n + 1)
    reject[ok] = sps.binom.cdf(c[ok], k[ok], share) + sps.binom.sf(k[ok] - c[ok] - 1, k[ok], share)
    return float(np.sum(sps.binom.pmf(k, n, discordance) * reject))


def mde(n: int, discordance: float, alpha: float = 0.05, power: float = POWER) -> float:
    """The smallest pass-rate change the exact McNemar test detects with `power` at this n.

    `discordance` is the share of cases that change pass/fail without any real effect (the
    observed churn); a real change of size d makes at least d of the cases discordant, so the
    discordance assumed under the alternative is max(discordance, d). math.inf when even a
    change of every case would go unnoticed (fewer cases than the smallest significant count).
    """
    if n <= 0:
        return math.inf

    def power_at(d: float) -> float:
        return mcnemar_power(n, d, min(1.0, max(discordance, d)), alpha)

    if power_at(1.0) < power:
        return math.inf
    lo, hi = 0.0, 1.0
    while hi - lo > 1e-4:  # power grows with the effect: bisect to a tenth of a point
        mid = (lo + hi) / 2.0
        lo, hi = (lo, mid) if power_at(mid) >= power else (mid, hi)
    return hi


def sign_flip(d: ArrayLike) -> Any:
    """Exact two-sided p-value of the sign-flip test on integer paired differences `d`.

    `d` is (n,) or (sims, n). Under the null each |d_i| enters the sum with a random sign; the
    sum of the |d_i| given a + sign has generating function prod_i (1 + x^|d_i|) / 2, evaluated at
    the FFT's roots of unity, where (1 + w^v) / 2 = cos(pi m v / N) e^{-i pi m v / N}: a product of
    real powers per distinct |d| and one phase, then one inverse FFT gives the exact law."""
    arr = np.asarray(d)
    if arr.dtype.kind not in "iu":
        raise ValueError("sign_flip needs integer differences (scale pass shares by k)")
    x = np.atleast_2d(arr).astype(np.int64)
    mags = np.abs(x)
    total = mags.sum(axis=1)  # A: the sum of |d|
    observed = np.abs(x.sum(axis=1))  # |S|, S = 2T - A
    out = np.ones(x.shape[0])
    chunk = max(1, 4_000_000 // max(1, int(total.max(initial=0)) + 1))
    for start in range(0, x.shape[0], chunk):
        sl = slice(start, start + chunk)
        out[sl] = _sign_flip_chunk(mags[sl], total[sl], observed[sl])
    return float(out[0]) if arr.ndim == 1 else out


def _sign_flip_chunk(
    mags: NDArray[np.int64], total: NDArray[np.int64], obs: NDArray[np.int64]
) -> Any:
    top = int(total.max(initial=0))
    if top == 0:
        return np.ones(len(mags))
    size = 1 << int(top).bit_length()  # N > A: the law has no wrap-around
    m = np.arange(size)
    spectrum = np.exp(-1j * np.pi * np.outer(total, m) / size)
    for v in range(1, int(mags.max()) + 1):
        count = (mags == v).sum(axis=1)
        if count.any():
            spectrum *= np.power(np.cos(np.pi * m * v / size)[None, :], count[:, None])
    law = np.clip(np.fft.ifft(spectrum, axis=1).real, 0.0, None)  # P(T = t), t = 0..N-1
    t = np.arange(size)
    extreme = np.abs(2 * t[None, :] - total[:, None]) >= obs[:, None]
    p = (law * extreme).sum(axis=1)
    return np.where(total == 0, 1.0, np.minimum(1.0, p))


def rate_mde(n: int, churn: float, alpha: float = 0.05, power: float = POWER, k: int = 1) -> float:
    """The smallest change in mean pass share the sign-flip test detects with `power` at n
    cases and k samples per case, where `churn` is the standard deviation of the per-case
    differences in pass share without a real change (the observed noise; it shrinks as k grows).

    A real change delta does not only shift the mean: the cases whose pass chance moves change
    their own sampling noise too, by up to |delta| / k in E[d^2] on average (a share of k draws
    has variance p(1 - p) / k, whose slope in p is at most 1 / k). The alternative is held to
    that bound: var(d) = churn^2 + |delta| / k. At k = 1 the test is exact McNemar and so is the
    power: discordance churn^2 + |delta| (the change adds |delta| one-way pairs to the churn).
    For k > 1, the normal approximation of the test (reject when |sum d| / sqrt(sum d^2) passes
    z_{alpha/2}): sqrt(n) delta - z_power sqrt(var) >= z_{alpha/2} sqrt(var + delta^2).
    math.inf when no change up to 1 is (too few cases)."""
    if n <= 0:
        return math.inf
    za, zb = sps.norm.ppf(1 - alpha / 2), sps.norm.ppf(power)

    def ok(delta: float) -> bool:
        if k <= 1:
            return mcnemar_power(n, delta, min(1.0, churn**2 + delta), alpha) >= power
        var = churn**2 + delta / k
        return bool(math.sqrt(n) * delta - zb * math.sqrt(var) >= za * math.sqrt(var + delta**2))

    if not ok(1.0):
        return math.inf
    lo, hi = 0.0, 1.0
    while hi - lo > 1e-4:
        mid = (lo + hi) / 2.0
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi
