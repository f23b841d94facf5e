"""The verdict of a comparison: is one encoder better than another, across seeds?

Pure functions, no I/O. The input is per-review correctness: for each model a
`seeds x reviews` array of right/wrong on the same test reviews (columns aligned across
models), one row per training seed.

The question a user asks is about encoders ("is ModernBERT better than BERT here?"), so
the quantity is the difference in mean test accuracy over seeds, and its uncertainty has
two sources: which seeds were drawn (seed-to-seed variation, often a point or more) and
which test reviews were drawn (shared by both models, so they are paired).

- `across_seeds`: the headline test and interval. A t-test of the difference in mean
  accuracy whose variance is estimated by components (method of moments for the crossed
  seeds x reviews design): per-seed accuracies give each model's seed part
  (s^2 / seeds, Welch), the paired per-review differences give the review part, less the
  seed-by-review noise already inside the seed part; Welch-Satterthwaite degrees of
  freedom. Why not a bootstrap p-value: with 2 to 5 seeds a bootstrap over seeds cannot
  see the uncertainty of its own variance (3 seeds have 10 distinct resamples, and
  resampling shrinks their variance by (S - 1) / S), while resampling seeds and reviews
  together counts the seed-by-review noise about three times (Owen 2007, "the pigeonhole
  bootstrap"). benchmarks/null_calibration.py measures the false-positive rate of both:
  the two-level bootstrap's swings from far below to far above alpha with the share of
  each variance; this t-test stays near alpha. A permutation test of seed labels is exact
  for the runs in hand but cannot reach p < 0.05 with 3 seeds a model (20 permutations),
  and it ignores the reviews. The two-level paired bootstrap interval (`two_level_bootstrap`)
  is still given, as a description.
- `aso`: almost stochastic order (Dror, Shlomov and Reichart 2019) of the per-seed
  accuracies, eps_min with 0.2 as the threshold its authors recommend. Written here in
  numpy because `deepsig` (its reference implementation) imports torch and takes seconds
  per pair; tests/test_verdict.py checks it against deepsig draw for draw.
- `holm`: Holm's step-down adjustment over the pairs (statsmodels).
- `power_across_seeds` / `power_one_seed`: the smallest difference found with probability
  0.8 at these seeds and reviews (noncentral t, scipy), and the seeds per model a
  one-point difference needs.
- `calibration`: equal-mass confidence bins (the top-class confidence of two classes is at
  least 0.5, so equal-width bins over [0, 1] leave half of them empty), ECE with a
  bootstrap interval, each bin's accuracy with a Wilson interval, Brier score and log loss
  (scikit-learn).
- `length_buckets`: accuracy by review length with counts and a Wilson interval per bucket;
  description, not a verdict, and no claim about what truncation costs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from imdb_cli.compare import stats

ALPHA = 0.05
CONFIDENCE = 0.95
POWER = 0.8
ONE_POINT = 0.01
ASO_THRESHOLD = 0.2
ASO_ITERATIONS = 1000
ASO_DT = 0.005
ASO_SEED = 42
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 42
ECE_RESAMPLES = 1000
CALIBRATION_BINS = 10
MAX_SEEDS = 200  # the most seeds a plan suggests; beyond that, more reviews are the answer
_CHUNK_CELLS = 4_000_000  # resample x review cells drawn at once (bounds memory)

ACROSS_SEEDS_METHOD = (
    "t-test of the difference in mean test accuracy over seeds; its variance has two "
    "parts, seeds within each model and test reviews shared by both (method of moments), "
    "Welch-Satterthwaite degrees of freedom"
)
BOOTSTRAP_METHOD = (
    "two-level paired bootstrap: seeds resampled within each model, test reviews resampled "
    "once for both; percentile interval"
)
ASO_METHOD = (
    f"almost stochastic order of the per-seed accuracies (Dror et al. 2019), eps_min below "
    f"{ASO_THRESHOLD} means the first model's accuracies are almost always higher"
)
HOLM_METHOD = "Holm step-down adjustment over the pairs"


# --------------------------------------------------------------------------- checks


def as_correctness(correct: Any) -> np.ndarray:
    """`seeds x reviews` float array of 0/1 (one seed may be given as a flat list)."""
    array = np.asarray(correct, dtype=np.float64)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"need seeds x reviews correctness, got shape {array.shape}")
    if not np.isin(array, (0.0, 1.0)).all():
        raise ValueError("correctness must be 0/1 (right/wrong per review)")
    return array


def _pair(correct_a: Any, correct_b: Any) -> tuple[np.ndarray, np.ndarray]:
    a, b = as_correctness(correct_a), as_correctness(correct_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"unaligned reviews: {a.shape[1]} vs {b.shape[1]}")
    return a, b


# --------------------------------------------------------------------------- headline


@dataclass(frozen=True)
class VarianceParts:
    """The variance of a difference in mean accuracy, by source, at the runs in hand.

    `seed_var_*`: the sample variance of each model's per-seed accuracies (seed effect plus
    the seed-by-review noise over these reviews); `residual_*`: the seed-by-review noise
    per review (two-way residual mean square); `review_var`: the variance over reviews of
    the models' paired difference, less that noise.
    """

    seeds_a: int
    seeds_b: int
    reviews: int
    seed_var_a: float
    seed_var_b: float
    residual_a: float
    residual_b: float
    review_var: float

    def at(self, seeds_a: int, seeds_b: int) -> tuple[float, float]:
        """(variance, degrees of freedom) of the difference with these seeds per model and
        the same test reviews (the per-seed variances as measured)."""
        parts = [
            (self.seed_var_a / seeds_a, seeds_a - 1),
            (self.seed_var_b / seeds_b, seeds_b - 1),
            (self.review_var / self.reviews, self.reviews - 1),
        ]
        variance = sum(v for v, _ in parts)
        denominator = sum(v * v / df for v, df in parts if df > 0 and v > 0)
        df = variance * variance / denominator if denominator > 0 else math.inf
        return variance, df


def _residual_mean_square(x: np.ndarray) -> float:
    """Residual mean square of the additive seeds + reviews fit (two-way ANOVA without
    replication): the seed-by-review noise per cell."""
    seeds, reviews = x.shape
    if seeds < 2 or reviews < 2:
        return 0.0
    residual = x - x.mean(axis=1, keepdims=True) - x.mean(axis=0, keepdims=True) + x.mean()
    return float((residual**2).sum() / ((seeds - 1) * (reviews - 1)))


def variance_parts(correct_a: Any, correct_b: Any) -> VarianceParts:
    a, b = _pair(correct_a, correct_b)
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError("need at least two seeds per model for the variance over seeds")
    reviews = a.shape[1]
    residual_a, residual_b = _residual_mean_square(a), _residual_mean_square(b)
    paired = a.mean(axis=0) - b.mean(axis=0)
    review_var = float(paired.var(ddof=1)) if reviews > 1 else 0.0
    # The per-review seed means still hold seed-by-review noise (residual / seeds), which
    # the seed part counts already; a negative estimate means no review part is seen.
    review_var = max(0.0, review_var - residual_a / a.shape[0] - residual_b / b.shape[0])
    return VarianceParts(
        seeds_a=a.shape[0],
        seeds_b=b.shape[0],
        reviews=reviews,
        seed_var_a=float(a.mean(axis=1).var(ddof=1)),
        seed_var_b=float(b.mean(axis=1).var(ddof=1)),
        residual_a=residual_a,
        residual_b=residual_b,
        review_var=review_var,
    )


@dataclass(frozen=True)
class AcrossSeeds:
    """Mean accuracy of A minus B over seeds, its interval and its test."""

    difference: float
    low: float
    high: float
    p_value: float
    statistic: float
    df: float
    se: float
    confidence: float
    parts: VarianceParts

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def across_seeds(correct_a: Any, correct_b: Any, *, confidence: float = CONFIDENCE) -> AcrossSeeds:
    """The headline test (module docstring): needs at least two seeds per model."""
    from scipy import special

    a, b = _pair(correct_a, correct_b)
    parts = variance_parts(a, b)
    difference = float(a.mean(axis=1).mean() - b.mean(axis=1).mean())
    variance, df = parts.at(parts.seeds_a, parts.seeds_b)
    se = math.sqrt(variance)
    if se == 0:
        # Every seed of each model scored alike and no review part: no noise to test against.
        p_value = 1.0 if difference == 0 else 0.0
        statistic = 0.0 if difference == 0 else math.copysign(math.inf, difference)
        return AcrossSeeds(
            difference, difference, difference, p_value, statistic, df, 0.0, confidence, parts
        )
    statistic = difference / se
    # Student's t distribution function and its inverse (scipy.special, as scipy.stats.t).
    p_value = float(2 * special.stdtr(df, -abs(statistic)))
    half = float(special.stdtrit(df, 0.5 + confidence / 2)) * se
    # A difference of two accuracies lies in [-1, 1]; with few seeds the t interval can
    # reach past that, which says no more than its bound does.
    return AcrossSeeds(
        difference,
        max(-1.0, difference - half),
        min(1.0, difference + half),
        min(1.0, p_value),
        statistic,
        df,
        se,
        confidence,
        parts,
    )


def _resample_counts(rng: np.random.Generator, rows: int, n: int) -> np.ndarray:
    """How often each of n items is drawn in each of `rows` resamples with replacement."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=rows).astype(np.float64)


def two_level_bootstrap(
    correct_a: Any,
    correct_b: Any,
    *,
    confidence: float = CONFIDENCE,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> stats.BootstrapResult:
    """Percentile interval of mean accuracy A - B: each resample draws seeds with
    replacement within each model and test reviews with replacement once for both models
    (the reviews stay paired). A description: see the module docstring for why the
    verdict does not use it as its test."""
    a, b = _pair(correct_a, correct_b)
    (seeds_a, reviews), seeds_b = a.shape, b.shape[0]
    rng = np.random.default_rng(seed)
    differences = np.empty(resamples)
    chunk = max(1, _CHUNK_CELLS // reviews)
    for start in range(0, resamples, chunk):
        rows = min(chunk, resamples - start)
        review_weights = _resample_counts(rng, rows, reviews)
        seed_a = _resample_counts(rng, rows, seeds_a) @ a / seeds_a  # rows x reviews
        seed_b = _resample_counts(rng, rows, seeds_b) @ b / seeds_b
        differences[start : start + rows] = ((seed_a - seed_b) * review_weights).sum(
            axis=1
        ) / reviews
    tail = (1 - confidence) / 2
    low, high = np.quantile(differences, [tail, 1 - tail])
    difference = float(a.mean() - b.mean())
    return stats.BootstrapResult(difference, float(low), float(high), confidence, resamples, seed)


# --------------------------------------------------------------------------- ASO


def _quantiles(sorted_scores: np.ndarray, p: np.ndarray) -> np.ndarray:
    """The empirical quantile function as deepsig defines it: the ceil(n p)-th smallest
    score (clipped to the sample), along the last axis of `sorted_scores`."""
    n = sorted_scores.shape[-1]
    index = np.clip(np.ceil(n * p).astype(np.int64) - 1, 0, n - 1)
    if sorted_scores.ndim == 1:
        return sorted_scores[index]
    shape = (*sorted_scores.shape[:-1], index.shape[-1])
    return np.take_along_axis(sorted_scores, np.broadcast_to(index, shape), axis=-1)


def _violation_ratio(f: np.ndarray, g: np.ndarray, dt: float) -> np.ndarray:
    """eps_W2 of Dror et al. (2019), eq. 4-5, from the two quantile functions on the grid
    (last axis): the share of the squared Wasserstein distance where A is below B."""
    diff = g - f
    distance = (diff**2 * dt).sum(axis=-1)
    violated = np.where(f >= g, 0.0, diff)
    # deepsig leaves out the grid's first point here (its comment: t lies in (0, 1));
    # kept, so that the numbers are the reference implementation's.
    violation = (violated[..., 1:] ** 2 * dt).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(distance == 0, 0.5, violation / np.where(distance == 0, 1.0, distance))
    return ratio


def aso(
    scores_a: Sequence[float],
    scores_b: Sequence[float],
    *,
    confidence: float = CONFIDENCE,
    comparisons: int = 1,
    iterations: int = ASO_ITERATIONS,
    dt: float = ASO_DT,
    seed: int = ASO_SEED,
    uniforms: tuple[np.ndarray, np.ndarray] | None = None,
) -> float:
    """eps_min: an upper bound (at `confidence`, Bonferroni over `comparisons` as deepsig
    does) of how far A's scores fall short of almost stochastically dominating B's; below
    0.2, A is better. `uniforms`: the (iterations x len(a), iterations x len(b)) uniform
    draws of the bootstrap, for checking against deepsig; default drawn from `seed`."""
    from scipy.stats import norm

    a = np.sort(np.asarray(scores_a, dtype=np.float64))
    b = np.sort(np.asarray(scores_b, dtype=np.float64))
    if len(a) == 0 or len(b) == 0:
        raise ValueError("ASO needs at least one score per model")
    if comparisons < 1 or iterations < 1:
        raise ValueError("comparisons and iterations must be at least 1")
    grid = np.arange(dt, 1, dt)
    ratio = float(_violation_ratio(_quantiles(a, grid), _quantiles(b, grid), dt))
    if uniforms is None:
        rng = np.random.default_rng(seed)
        uniforms = (rng.random((iterations, len(a))), rng.random((iterations, len(b))))
    # Each bootstrap sample draws from the empirical distributions (their quantile
    # function at uniform draws), then takes its own quantile function on the grid.
    sample_a = np.sort(_quantiles(a, uniforms[0]), axis=1)
    sample_b = np.sort(_quantiles(b, uniforms[1]), axis=1)
    samples = _violation_ratio(_quantiles(sample_a, grid), _quantiles(sample_b, grid), dt)
    const = math.sqrt(len(a) * len(b) / (len(a) + len(b)))
    sigma = float(np.std(const * (samples - ratio)))
    level = confidence + (1 - confidence) / comparisons if comparisons > 1 else confidence
    eps_min = ratio - sigma / const * float(norm.ppf(1 - level))
    return float(np.clip(eps_min, 0.0, 1.0))


# --------------------------------------------------------------------------- many pairs


def holm(p_values: Sequence[float], alpha: float = ALPHA) -> list[float]:
    """Holm-adjusted p-values (statsmodels), in the order given."""
    if len(p_values) <= 1:
        return [float(p) for p in p_values]
    from statsmodels.stats.multitest import multipletests

    return [float(p) for p in multipletests(list(p_values), alpha=alpha, method="holm")[1]]


# --------------------------------------------------------------------------- power


def power_of_t(difference: float, se: float, df: float, alpha: float = ALPHA) -> float:
    """Probability that the two-sided t-test at `alpha` finds `difference` when its
    standard error is `se` (noncentral t, scipy)."""
    from scipy import special

    if se <= 0:
        return 1.0 if difference != 0 else alpha
    critical = float(special.stdtrit(df, 1 - alpha / 2))
    shift = abs(difference) / se
    # The noncentral t's distribution function (scipy.special, as scipy.stats.nct).
    upper = 1.0 - float(special.nctdtr(df, shift, critical))
    # The wrong-direction tail; NaN far out, where it is 0.
    lower = float(special.nctdtr(df, shift, -critical))
    if not math.isfinite(upper):
        upper = 1.0 if shift > critical else 0.0
    return min(1.0, upper + (lower if math.isfinite(lower) else 0.0))


def detectable(se: float, df: float, power: float = POWER, alpha: float = ALPHA) -> float:
    """The smallest difference found with probability `power` by the t-test at `alpha`."""
    from scipy.optimize import brentq

    if se <= 0:
        return 0.0
    high = se
    while power_of_t(high, se, df, alpha) < power:
        high *= 2
    return float(brentq(lambda d: power_of_t(d, se, df, alpha) - power, 0.0, high, xtol=1e-7))


@dataclass(frozen=True)
class Power:
    """What a comparison could have found, and what one point would need."""

    detectable: float  # the smallest difference found with probability `power`
    power: float
    alpha: float
    seeds_for_one_point: int | None  # per model, at these test reviews; None: none suffice
    reviews_floor: float  # the standard error the test reviews leave with endless seeds
    basis: str  # how it was computed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _seeds_needed(
    at: Any, reviews_floor: float, target: float, power: float, alpha: float
) -> int | None:
    """The fewest seeds per model (2 to MAX_SEEDS) at which `target` is found with
    `power`; `at(seeds)` gives (variance, df)."""
    if power_of_t(target, reviews_floor, math.inf, alpha) < power:
        return None  # even endless seeds leave the reviews' noise
    for seeds in range(2, MAX_SEEDS + 1):
        variance, df = at(seeds)
        if power_of_t(target, math.sqrt(variance), df, alpha) >= power:
            return seeds
    return None


def power_across_seeds(
    parts: VarianceParts, *, power: float = POWER, alpha: float = ALPHA, target: float = ONE_POINT
) -> Power:
    """From the measured seed-to-seed and review-level variance."""
    variance, df = parts.at(parts.seeds_a, parts.seeds_b)
    floor = math.sqrt(parts.review_var / parts.reviews)
    return Power(
        detectable=detectable(math.sqrt(variance), df, power, alpha),
        power=power,
        alpha=alpha,
        seeds_for_one_point=_seeds_needed(lambda s: parts.at(s, s), floor, target, power, alpha),
        reviews_floor=floor,
        basis=(
            "measured: the per-seed accuracies' variance of each model and the review-level "
            f"variance over {parts.reviews} test reviews"
        ),
    )


def power_one_seed(
    correct_a: Any,
    correct_b: Any,
    *,
    power: float = POWER,
    alpha: float = ALPHA,
    target: float = ONE_POINT,
) -> Power:
    """With one seed a model, the seed-to-seed variance is not measured. The two
    checkpoints' disagreements bound it from above: were every disagreement seed noise
    (nothing the encoders differ in, no seed effect on all reviews at once), S seeds a
    model would leave a variance of var(disagreement) / (reviews * S). The seed count is
    then a lower bound, and `detectable` is the smallest difference between these two
    checkpoints the paired test finds with `power`."""
    a, b = _pair(correct_a, correct_b)
    reviews = a.shape[1]
    paired = a[0] - b[0]
    spread = float(paired.var(ddof=1)) if reviews > 1 else 0.0
    se = math.sqrt(spread / reviews)

    def at(seeds: int) -> tuple[float, float]:
        # Both models' seed parts alike: Welch-Satterthwaite gives 2 (seeds - 1) df.
        return spread / (reviews * seeds), 2.0 * (seeds - 1)

    return Power(
        detectable=detectable(se, math.inf, power, alpha),
        power=power,
        alpha=alpha,
        seeds_for_one_point=_seeds_needed(at, 0.0, target, power, alpha),
        reviews_floor=0.0,
        basis=(
            "one seed a model: the checkpoints' disagreements taken as seed noise only, so "
            "the seeds are a lower bound; compare again once seeds are added"
        ),
    )


# --------------------------------------------------------------------------- description


@dataclass(frozen=True)
class CalibrationBin:
    low: float  # the bin's smallest and largest confidence
    high: float
    reviews: int
    correct: int
    accuracy: float
    confidence: float  # mean predicted-class probability in the bin
    accuracy_low: float  # Wilson interval of the bin's accuracy
    accuracy_high: float


@dataclass(frozen=True)
class Calibration:
    """Top-label calibration over equal-mass bins (bins that hold data)."""

    ece: float
    ece_low: float  # bootstrap interval over test reviews (bins re-cut per resample)
    ece_high: float
    brier: float
    log_loss: float
    bins: list[CalibrationBin]
    mean_confidence: float
    accuracy: float
    confidence_level: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _bin_ids(confidence: np.ndarray, bins: int) -> np.ndarray:
    """Equal-mass bins as scikit-learn's calibration_curve(strategy="quantile") cuts them:
    edges at the confidences' percentiles, ties kept together (so a bin may stay empty)."""
    edges = np.percentile(confidence, np.linspace(0, 100, bins + 1))
    return np.searchsorted(edges[1:-1], confidence)


def _ece(correct: np.ndarray, confidence: np.ndarray, bins: int) -> float:
    ids = _bin_ids(confidence, bins)
    right = np.bincount(ids, weights=correct, minlength=bins)
    sure = np.bincount(ids, weights=confidence, minlength=bins)
    return float(np.abs(right - sure).sum() / len(confidence))


def calibration(
    labels: Sequence[int],
    probs: Any,
    *,
    bins: int = CALIBRATION_BINS,
    resamples: int = ECE_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence_level: float = CONFIDENCE,
) -> Calibration:
    """`probs`: [reviews, classes] class probabilities; confidence is the predicted
    class's. ECE = sum over bins of (reviews in bin / reviews) x |accuracy - confidence|."""
    from sklearn.metrics import brier_score_loss, log_loss

    truth = np.asarray(labels, dtype=np.int64)
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or len(p) != len(truth) or len(truth) == 0:
        raise ValueError(f"need one row of class probabilities per review, got {p.shape}")
    # Ledgers keep float32 softmax rows, whose sums miss 1 in the seventh digit; scikit-learn
    # warns of that (ledger_checks has already refused rows that really do not sum to 1).
    p = p / p.sum(axis=1, keepdims=True)
    predicted = p.argmax(axis=1)
    confidence = p[np.arange(len(p)), predicted]
    correct = (predicted == truth).astype(np.float64)
    ids = _bin_ids(confidence, bins)
    rows = []
    for b in range(bins):
        inside = ids == b
        n = int(inside.sum())
        if n == 0:
            continue
        k = int(correct[inside].sum())
        low, high = stats.wilson_interval(k, n, confidence_level)
        rows.append(
            CalibrationBin(
                low=float(confidence[inside].min()),
                high=float(confidence[inside].max()),
                reviews=n,
                correct=k,
                accuracy=k / n,
                confidence=float(confidence[inside].mean()),
                accuracy_low=low,
                accuracy_high=high,
            )
        )
    rng = np.random.default_rng(seed)
    n = len(truth)
    resampled = [
        _ece(correct[pick], confidence[pick], bins)
        for pick in (rng.integers(0, n, n) for _ in range(resamples))
    ]
    tail = (1 - confidence_level) / 2
    ece_low, ece_high = np.quantile(resampled, [tail, 1 - tail])
    classes = list(range(p.shape[1]))
    # Clipped like log_loss does: a probability of exactly 0 on the true class is infinite.
    clipped = np.clip(p, 1e-15, 1.0)
    return Calibration(
        ece=_ece(correct, confidence, bins),
        ece_low=float(ece_low),
        ece_high=float(ece_high),
        # scikit-learn's default scale: [0, 1] with two classes, the sum over classes else.
        brier=float(brier_score_loss(truth, p, labels=classes)),
        log_loss=float(log_loss(truth, clipped, labels=classes)),
        bins=rows,
        mean_confidence=float(confidence.mean()),
        accuracy=float(correct.mean()),
        confidence_level=confidence_level,
    )


@dataclass(frozen=True)
class LengthBucket:
    low: int  # full token count, inclusive
    high: int | None  # inclusive; None: no upper bound
    reviews: int
    correct: int
    accuracy_low: float | None  # Wilson interval; None for an empty bucket
    accuracy_high: float | None

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.reviews if self.reviews else None

    @property
    def label(self) -> str:
        return f"{self.low}+" if self.high is None else f"{self.low}–{self.high}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "label": self.label, "accuracy": self.accuracy}


def length_buckets(
    correct: Sequence[bool],
    token_counts: Sequence[int],
    edges: Sequence[int],
    confidence: float = CONFIDENCE,
) -> list[LengthBucket]:
    """Accuracy in buckets of full token count: [0, e1], [e1 + 1, e2], ..., [last + 1, ∞)."""
    right = np.asarray(correct, dtype=bool)
    counts = np.asarray(token_counts, dtype=np.int64)
    if right.shape != counts.shape:
        raise ValueError(f"{len(right)} reviews but {len(counts)} token counts")
    lows = [0, *(edge + 1 for edge in edges)]
    highs: list[int | None] = [*edges, None]
    buckets = []
    for low, high in zip(lows, highs, strict=True):
        inside = counts >= low if high is None else (counts >= low) & (counts <= high)
        n, k = int(inside.sum()), int(right[inside].sum())
        interval = stats.wilson_interval(k, n, confidence) if n else (None, None)
        buckets.append(LengthBucket(low, high, n, k, *interval))
    return buckets


# --------------------------------------------------------------------------- validation


def validation_interval(
    val_accs: Sequence[float], reviews: int | None, confidence: float = CONFIDENCE
) -> tuple[float, float] | None:
    """How sure one learning rate's validation accuracy is: one seed, the Wilson interval
    on the validation reviews; several, a t interval over the seeds, never narrower than
    the Wilson interval of all their reviews together. None without the review count."""
    from scipy import special

    if not val_accs or not reviews:
        return None
    seeds = len(val_accs)
    mean = sum(val_accs) / seeds
    pooled = stats.wilson_interval(round(mean * reviews * seeds), reviews * seeds, confidence)
    if seeds == 1:
        return pooled
    sd = float(np.std(val_accs, ddof=1))
    half = float(special.stdtrit(seeds - 1, 0.5 + confidence / 2)) * sd / math.sqrt(seeds)
    return min(pooled[0], mean - half), max(pooled[1], mean + half)


# --------------------------------------------------------------------------- one model


@dataclass(frozen=True)
class MeanInterval:
    """A model's mean test accuracy over its seeds and its interval."""

    mean: float
    low: float
    high: float
    seeds: int
    method: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


WILSON_METHOD = "Wilson score interval (one run)"
MEAN_METHOD = (
    "t interval of the mean over seeds; variance from the seeds and from the test reviews "
    "(method of moments), Welch-Satterthwaite degrees of freedom"
)


def mean_interval(correct: Any, *, confidence: float = CONFIDENCE) -> MeanInterval:
    """One seed: Wilson; several: the same two variance parts as `across_seeds`, for
    one model (its review part is how hard the drawn reviews happen to be)."""
    from scipy import special

    x = as_correctness(correct)
    seeds, reviews = x.shape
    mean = float(x.mean())
    if seeds == 1:
        low, high = stats.wilson_interval(int(x.sum()), reviews, confidence)
        return MeanInterval(mean, low, high, 1, WILSON_METHOD)
    seed_part = float(x.mean(axis=1).var(ddof=1)) / seeds
    per_review = float(x.mean(axis=0).var(ddof=1)) if reviews > 1 else 0.0
    review_part = max(0.0, per_review - _residual_mean_square(x) / seeds) / reviews
    variance = seed_part + review_part
    pieces = [(seed_part, seeds - 1), (review_part, reviews - 1)]
    denominator = sum(v * v / df for v, df in pieces if v > 0 and df > 0)
    df = variance * variance / denominator if denominator > 0 else math.inf
    half = float(special.stdtrit(df, 0.5 + confidence / 2)) * math.sqrt(variance)
    return MeanInterval(mean, max(0.0, mean - half), min(1.0, mean + half), seeds, MEAN_METHOD)


# --------------------------------------------------------------------------- the verdict

ENCODERS = "encoders"  # two or more seeds each: the test across seeds
CHECKPOINTS = "checkpoints"  # one seed on a side: McNemar on the two checkpoints
TEST_ACROSS_SEEDS = "t-test across seeds"
TEST_MCNEMAR = "McNemar (checkpoints)"


def format_p(p: float) -> str:
    if p == 0:
        return "< 1e-300"
    return f"{p:.1e}" if p < 1e-3 else f"{p:.2g}"


@dataclass(frozen=True)
class ModelRuns:
    """One compared model: its runs' correctness on the shared test reviews."""

    label: str
    correct: np.ndarray  # seeds x reviews, 0/1
    latest: int  # the row of the run shown, whose checkpoint McNemar tests


@dataclass(frozen=True)
class PairVerdict:
    a: str
    b: str
    level: str  # ENCODERS or CHECKPOINTS
    seeds_a: int
    seeds_b: int
    reviews: int
    mean_a: float  # over seeds
    mean_b: float
    difference: float  # the verdict's: mean_a - mean_b (ENCODERS), latest runs' (CHECKPOINTS)
    low: float
    high: float
    interval_method: str
    test: str
    p_value: float
    p_adjusted: float  # Holm over `pairs` pairs (the same as p_value for one pair)
    pairs: int
    alpha: float
    power: Power
    mcnemar: stats.McNemarResult  # the latest run of each: a checkpoint-level view
    checkpoint_acc_a: float
    checkpoint_acc_b: float
    across: AcrossSeeds | None = None
    bootstrap: stats.BootstrapResult | None = None  # two-level, a description
    aso_first: str | None = None  # the model whose order over the other ASO gives
    aso_eps_min: float | None = None
    caveat: str | None = None  # why even a clear result says little about the encoders

    @property
    def significant(self) -> bool:
        return self.p_adjusted < self.alpha

    @property
    def winner(self) -> str | None:
        """The better encoder: only across seeds, only when the adjusted test says so."""
        if self.level != ENCODERS or not self.significant:
            return None
        return self.a if self.difference > 0 else self.b

    @property
    def better_checkpoint(self) -> str | None:
        if self.level != CHECKPOINTS or not self.significant:
            return None
        return self.a if self.mcnemar.b > self.mcnemar.c else self.b

    def _p(self) -> str:
        if self.pairs > 1:
            return f"Holm-adjusted p = {format_p(self.p_adjusted)} over {self.pairs} pairs"
        return f"p = {format_p(self.p_value)}"

    def _interval(self) -> str:
        return f"{CONFIDENCE:.0%} CI {self.low:+.4f} to {self.high:+.4f}"

    def _one_point(self) -> str:
        seeds = self.power.seeds_for_one_point
        if self.level == CHECKPOINTS:
            if seeds is None:
                return f"one point is out of reach on {self.reviews} test reviews"
            return f"at least {seeds} seeds per model to find one point"
        if seeds is None:
            return (
                f"one point is out of reach on {self.reviews} test reviews with any number of "
                "seeds (more test reviews would help)"
            )
        return f"one point would need about {seeds} seeds per model"

    def sentence(self) -> str:
        """The verdict in words: "beats" only when the adjusted test across seeds says so."""
        caveat = f" ({self.caveat})" if self.caveat else ""
        if self.level == ENCODERS:
            seeds = f"{self.seeds_a} and {self.seeds_b} seeds, {self.reviews} test reviews"
            if self.winner is not None:
                sign = 1 if self.winner == self.a else -1
                loser = self.b if self.winner == self.a else self.a
                means = (self.mean_a, self.mean_b)[::sign]
                low, high = sorted((sign * self.low, sign * self.high))
                return (
                    f"{self.winner} beats {loser} across seeds{caveat}: mean test accuracy "
                    f"{means[0]:.4f} vs {means[1]:.4f}, {sign * self.difference:+.4f} "
                    f"({CONFIDENCE:.0%} CI {low:+.4f} to {high:+.4f}), {self._p()} ({seeds})"
                )
            return (
                f"{self.a} vs {self.b}: no difference detected across seeds{caveat}: "
                f"{self.mean_a:.4f} vs {self.mean_b:.4f}, {self.difference:+.4f} "
                f"({self._interval()}), {self._p()} ({seeds}); it could find "
                f"{self.power.detectable:.4f} with probability {self.power.power:.0%}; "
                f"{self._one_point()}"
            )
        m = self.mcnemar
        if self.seeds_a == self.seeds_b == 1:
            single = "one seed each"
        else:
            single = f"one seed of {self.a if self.seeds_a == 1 else self.b}"
        if self.caveat:
            single += f"; {self.caveat}"
        what = f"{self.a} vs {self.b} compares two checkpoints, not two encoders ({single}): "
        counts = f"{self._p().replace('p =', 'McNemar p =')} (b={m.b}, c={m.c})"
        better = self.better_checkpoint
        if better is None:
            found = (
                f"no difference detected between the checkpoints, {self.checkpoint_acc_a:.4f} "
                f"vs {self.checkpoint_acc_b:.4f}, {counts}"
            )
        else:
            other = self.b if better == self.a else self.a
            accs = (
                (self.checkpoint_acc_a, self.checkpoint_acc_b)
                if better == self.a
                else (self.checkpoint_acc_b, self.checkpoint_acc_a)
            )
            found = (
                f"{better}'s checkpoint is more accurate than {other}'s on these "
                f"{self.reviews} test reviews, {accs[0]:.4f} vs {accs[1]:.4f}, {counts}"
            )
        return f"{what}{found}; to compare the encoders, {self._one_point()}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data |= {
            "significant": self.significant,
            "winner": self.winner,
            "better_checkpoint": self.better_checkpoint,
            "verdict": self.sentence(),
        }
        return data


def _judge_pair(
    first: ModelRuns, second: ModelRuns, aso_comparisons: int, alpha: float
) -> PairVerdict:
    a, b = _pair(first.correct, second.correct)
    latest_a, latest_b = a[first.latest], b[second.latest]
    mcnemar = stats.mcnemar(latest_a.astype(bool).tolist(), latest_b.astype(bool).tolist())
    common = {
        "a": first.label,
        "b": second.label,
        "seeds_a": a.shape[0],
        "seeds_b": b.shape[0],
        "reviews": a.shape[1],
        "mean_a": float(a.mean()),
        "mean_b": float(b.mean()),
        "pairs": 1,
        "alpha": alpha,
        "mcnemar": mcnemar,
        "checkpoint_acc_a": float(latest_a.mean()),
        "checkpoint_acc_b": float(latest_b.mean()),
    }
    if a.shape[0] < 2 or b.shape[0] < 2:
        boot = stats.paired_bootstrap(latest_a.astype(bool), latest_b.astype(bool))
        return PairVerdict(
            level=CHECKPOINTS,
            difference=boot.difference,
            low=boot.low,
            high=boot.high,
            interval_method=stats.BOOTSTRAP_METHOD,
            test=TEST_MCNEMAR,
            p_value=mcnemar.p_value,
            p_adjusted=mcnemar.p_value,
            power=power_one_seed(latest_a, latest_b, alpha=alpha),
            **common,
        )
    result = across_seeds(a, b)
    scores_a, scores_b = a.mean(axis=1), b.mean(axis=1)
    first_label, others = (
        (first.label, (scores_a, scores_b))
        if result.difference >= 0
        else (second.label, (scores_b, scores_a))
    )
    return PairVerdict(
        level=ENCODERS,
        difference=result.difference,
        low=result.low,
        high=result.high,
        interval_method=ACROSS_SEEDS_METHOD,
        test=TEST_ACROSS_SEEDS,
        p_value=result.p_value,
        p_adjusted=result.p_value,
        power=power_across_seeds(result.parts, alpha=alpha),
        across=result,
        bootstrap=two_level_bootstrap(a, b),
        aso_first=first_label,
        aso_eps_min=aso(*others, comparisons=aso_comparisons),
        **common,
    )


def judge(
    pairs: Sequence[tuple[ModelRuns, ModelRuns]],
    *,
    alpha: float = ALPHA,
    caveats: dict[tuple[str, str], str] | None = None,
) -> list[PairVerdict]:
    """Each pair's verdict, the p-values Holm-adjusted over all of them."""
    from dataclasses import replace

    across = sum(1 for x, y in pairs if x.correct.shape[0] > 1 and y.correct.shape[0] > 1)
    found = [_judge_pair(x, y, max(1, across), alpha) for x, y in pairs]
    adjusted = holm([v.p_value for v in found], alpha)
    return [
        replace(
            v,
            p_adjusted=p,
            pairs=len(found),
            caveat=(caveats or {}).get((v.a, v.b)),
        )
        for v, p in zip(found, adjusted, strict=True)
    ]


def suggested_seeds(pairs: Sequence[PairVerdict], floor: int = 3) -> int | None:
    """Seeds per model for the pairs not settled across seeds: the most any of them needs
    to find one point (at least `floor`; MAX_SEEDS + 1 when out of reach); None when no
    pair asks for more."""
    needs = [
        v.power.seeds_for_one_point for v in pairs if v.level == CHECKPOINTS or v.winner is None
    ]
    if not needs:
        return None
    return max(floor, *[MAX_SEEDS + 1 if n is None else n for n in needs])


WHY_OTHERS_DIFFER = (
    "McNemar on the latest runs tests two checkpoints and ignores how much a model varies "
    "from seed to seed, so it can call a gap significant that another seed would not "
    "repeat, or miss one that the seeds show; almost stochastic order compares the "
    "per-seed accuracies as distributions and leaves out which test reviews were drawn, so "
    "a few seeds that do not overlap give eps_min 0 however small the gap, and seeds that "
    f"overlap keep it above {ASO_THRESHOLD} however large"
)


def primary_test(pairs: Sequence[PairVerdict]) -> str:
    """The one test the verdict rests on, stated before any result."""
    levels = {v.level for v in pairs}
    parts = []
    if ENCODERS in levels or not pairs:
        parts.append(
            "with two or more seeds per model, a t-test of the difference in mean test "
            "accuracy whose variance has two parts, seeds within each model and the test "
            "reviews both share (Welch-Satterthwaite degrees of freedom)"
        )
    if CHECKPOINTS in levels:
        parts.append(
            "with one seed on a side, McNemar's test of the two checkpoints, which says "
            "nothing about the encoders"
        )
    text = "; ".join(parts)
    if len(pairs) > 1:
        text += f"; p-values Holm-adjusted over the {len(pairs)} pairs"
    return f"{text}; significance at {ALPHA}"


@dataclass(frozen=True)
class Verdict:
    """The comparison's verdict: one `PairVerdict` a paired pair, the p-values adjusted
    together, and how to add the seeds it asks for. What json and the HTML report read."""

    pairs: list[PairVerdict] = field(default_factory=list)
    seeds_hint: str | None = None
    alpha: float = ALPHA

    @property
    def primary_test(self) -> str:
        return primary_test(self.pairs)

    @property
    def suggested_seeds(self) -> int | None:
        return suggested_seeds(self.pairs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "primary_test": self.primary_test,
            "why_others_differ": WHY_OTHERS_DIFFER,
            "adjustment": HOLM_METHOD if len(self.pairs) > 1 else None,
            "alpha": self.alpha,
            "aso_threshold": ASO_THRESHOLD,
            "aso_method": ASO_METHOD,
            "bootstrap_method": BOOTSTRAP_METHOD,
            "pairs": [v.to_dict() for v in self.pairs],
            "suggested_seeds": self.suggested_seeds,
            "seeds_hint": self.seeds_hint,
        }
