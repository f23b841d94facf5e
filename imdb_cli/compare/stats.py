"""The statistics behind `imdb compare`: pure functions, no I/O.

- `wilson_interval`: a confidence interval for an accuracy measured on n test reviews.
  Wilson's score interval keeps its coverage near 0.9 accuracy and small n, where the
  textbook normal ("Wald") interval is too narrow and can pass 1.0.
- `mcnemar`: the paired test for two models scored on the same reviews. Only the
  discordant reviews carry information: b = A right and B wrong, c = A wrong and B right.
  Exact binomial (two-sided, p = 0.5) when b + c < 25, where the chi-square
  approximation is poor; chi-square with continuity correction (1 df) otherwise.
- `paired_bootstrap`: an interval for the difference in accuracy of two models on the
  same reviews, by resampling the reviews (with replacement) and keeping each review's
  pair of outcomes together. McNemar says whether there is a difference; this says how
  large it may be. Seeded, so the same ledgers always give the same interval.
- `mean_std`: mean and sample standard deviation (ddof=1) over seeds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

EXACT_BELOW = 25  # b + c below this: exact binomial test; otherwise chi-square
CI_METHOD = "Wilson score interval"
BOOTSTRAP_METHOD = "paired bootstrap over test reviews, percentile interval"
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 42
_BOOTSTRAP_CHUNK = 500  # resamples drawn at once: bounds memory to chunk x reviews indices
MCNEMAR_METHOD = (
    f"McNemar, exact binomial when b+c < {EXACT_BELOW}, else chi-square with continuity correction"
)


def z_value(confidence: float) -> float:
    """The two-sided normal quantile: 1.95996... for 0.95."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion `successes / n`."""
    if n <= 0:
        raise ValueError(f"need at least one trial, got n={n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, {n}], got {successes}")
    z = z_value(confidence)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # At p = 0 or 1 the interval touches that bound exactly; float noise would miss it.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


@dataclass(frozen=True)
class McNemarResult:
    b: int  # A right, B wrong
    c: int  # A wrong, B right
    n: int  # reviews both were scored on
    p_value: float
    method: str  # "exact" or "chi2-cc"
    statistic: float | None = None  # chi-square statistic when method == "chi2-cc"


def exact_binomial_two_sided(b: int, c: int) -> float:
    """P-value of the two-sided sign test on b vs c discordant pairs (p = 0.5).

    The binomial(b + c, 0.5) is symmetric, so doubling the smaller tail equals summing
    every outcome no more likely than the one observed (scipy's binomtest definition).
    Integer arithmetic keeps it exact for any n.
    """
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1))
    return min(1.0, 2 * tail / 2**n)


def chi2_continuity(b: int, c: int) -> tuple[float, float]:
    """(statistic, p-value) of McNemar's chi-square with continuity correction, 1 df."""
    n = b + c
    if n == 0:
        return 0.0, 1.0
    statistic = max(abs(b - c) - 1, 0) ** 2 / n
    # Survival function of chi-square with 1 df: P(Z^2 > x) = erfc(sqrt(x / 2)).
    return statistic, math.erfc(math.sqrt(statistic / 2))


def mcnemar_counts(b: int, c: int, n: int) -> McNemarResult:
    if b < 0 or c < 0 or b + c > n:
        raise ValueError(f"impossible discordant counts b={b}, c={c} for n={n}")
    if b + c < EXACT_BELOW:
        return McNemarResult(b, c, n, exact_binomial_two_sided(b, c), "exact")
    statistic, p_value = chi2_continuity(b, c)
    return McNemarResult(b, c, n, p_value, "chi2-cc", statistic)


def mcnemar(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> McNemarResult:
    """McNemar's test from per-review correctness of two models, aligned review by review."""
    if len(correct_a) != len(correct_b):
        raise ValueError(f"unaligned predictions: {len(correct_a)} vs {len(correct_b)} reviews")
    b = sum(1 for x, y in zip(correct_a, correct_b, strict=True) if x and not y)
    c = sum(1 for x, y in zip(correct_a, correct_b, strict=True) if y and not x)
    return mcnemar_counts(b, c, len(correct_a))


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (ddof=1); the std is None for a single value."""
    if not values:
        raise ValueError("mean of no values")
    mean = math.fsum(values) / len(values)
    if len(values) < 2:
        return mean, None
    variance = math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(variance)


@dataclass(frozen=True)
class BootstrapResult:
    """accuracy(A) - accuracy(B) on the same reviews, with its bootstrap interval."""

    difference: float
    low: float
    high: float
    confidence: float
    resamples: int
    seed: int


def paired_bootstrap(
    correct_a: Sequence[bool],
    correct_b: Sequence[bool],
    *,
    confidence: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> BootstrapResult:
    """Percentile interval of accuracy(A) - accuracy(B), resampling reviews with replacement.

    Resample r draws its n review indices as row r of `rng.integers(0, n, (resamples, n))`
    (drawn in chunks of rows, which yields the same numbers), with
    `rng = np.random.default_rng(seed)`; the interval is numpy's default (linear)
    quantiles of the resampled differences at (1 - confidence) / 2 and its complement.
    """
    if len(correct_a) != len(correct_b):
        raise ValueError(f"unaligned predictions: {len(correct_a)} vs {len(correct_b)} reviews")
    n = len(correct_a)
    if n == 0:
        raise ValueError("no reviews to resample")
    if resamples < 1:
        raise ValueError(f"need at least one resample, got {resamples}")
    z_value(confidence)  # checks the range
    # Per review: +1 only A right, -1 only B right, 0 both or neither.
    per_review = np.asarray(correct_a, dtype=np.int64) - np.asarray(correct_b, dtype=np.int64)
    rng = np.random.default_rng(seed)
    differences = np.empty(resamples, dtype=np.float64)
    for start in range(0, resamples, _BOOTSTRAP_CHUNK):
        rows = min(_BOOTSTRAP_CHUNK, resamples - start)
        indices = rng.integers(0, n, size=(rows, n))
        differences[start : start + rows] = per_review[indices].sum(axis=1) / n
    tail = (1 - confidence) / 2
    low, high = np.quantile(differences, [tail, 1 - tail])
    return BootstrapResult(
        difference=float(per_review.sum()) / n,
        low=float(low),
        high=float(high),
        confidence=confidence,
        resamples=resamples,
        seed=seed,
    )
