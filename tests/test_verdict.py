"""The verdict's statistics, each against a library (scipy, statsmodels, scikit-learn,
deepsig) or a closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest
from benchmark_support import load_benchmark
from scipy import stats as scipy_stats

from imdb_cli.compare import verdict

simulation = load_benchmark("null_calibration")


def crossed(seed: int, seeds: int = 3, reviews: int = 300, shift: float = 0.0) -> tuple:
    """Two models' correctness drawn as benchmarks/null_calibration.py draws it."""
    rng = np.random.default_rng(seed)
    world = simulation.World(seeds=seeds, reviews=reviews)
    mu = simulation.mu_for(world.accuracy, world.total_sd)
    return simulation.draw_pair(rng, world, mu + shift, mu)


# --------------------------------------------------------------------------- headline


def test_the_residual_noise_is_the_two_way_anova_residual_mean_square_of_statsmodels() -> None:
    from statsmodels.regression.linear_model import OLS

    a, b = crossed(1, seeds=3, reviews=60)
    parts = verdict.variance_parts(a, b)
    for x, residual in ((a, parts.residual_a), (b, parts.residual_b)):
        seeds, reviews = np.indices(x.shape)
        # y ~ seed + review, as dummies (one level of each left out for the intercept).
        design = np.column_stack(
            [
                np.ones(x.size),
                *[(seeds.ravel() == s).astype(float) for s in range(1, x.shape[0])],
                *[(reviews.ravel() == r).astype(float) for r in range(1, x.shape[1])],
            ]
        )
        fit = OLS(x.ravel(), design).fit()
        assert residual == pytest.approx(fit.ssr / fit.df_resid, rel=1e-9)
    assert parts.seed_var_a == pytest.approx(np.var(a.mean(axis=1), ddof=1))


def test_without_a_review_part_the_test_is_welchs_t_test_of_scipy() -> None:
    # Every review is right for exactly 3 of A's 4 seeds and 1 of B's 3 (which seeds
    # varies), so the per-review difference is the same everywhere: no review part, and
    # the test is Welch's on the per-seed accuracies.
    rng = np.random.default_rng(3)
    a = np.ones((4, 400))
    a[rng.integers(0, 4, 400), np.arange(400)] = 0
    b = np.zeros((3, 400))
    b[rng.integers(0, 3, 400), np.arange(400)] = 1
    result = verdict.across_seeds(a, b)
    assert result.parts.review_var == 0.0
    welch = scipy_stats.ttest_ind(a.mean(axis=1), b.mean(axis=1), equal_var=False)
    assert result.p_value == pytest.approx(welch.pvalue, rel=1e-9)
    assert result.df == pytest.approx(welch.df, rel=1e-9)
    assert result.statistic == pytest.approx(welch.statistic, rel=1e-9)
    low, high = welch.confidence_interval(0.95)
    assert (result.low, result.high) == pytest.approx((low, high), rel=1e-9)


def test_the_interval_and_the_p_value_are_one_t_test_of_the_components() -> None:
    a, b = crossed(5, seeds=3, reviews=300, shift=0.3)
    result = verdict.across_seeds(a, b)
    p = result.parts
    assert p.review_var > 0  # this draw has a review part
    pieces = [p.seed_var_a / 3, p.seed_var_b / 3, p.review_var / 300]
    variance = sum(pieces)
    df = variance**2 / (pieces[0] ** 2 / 2 + pieces[1] ** 2 / 2 + pieces[2] ** 2 / 299)
    assert result.se == pytest.approx(math.sqrt(variance))
    assert result.df == pytest.approx(df)
    assert result.difference == pytest.approx(a.mean() - b.mean())
    t = scipy_stats.t(df)
    assert result.p_value == pytest.approx(2 * t.sf(abs(result.difference) / result.se))
    assert result.high - result.difference == pytest.approx(t.ppf(0.975) * result.se)
    # The test and the interval never disagree.
    assert (result.p_value < 0.05) == (not result.low <= 0 <= result.high)


def test_the_variance_estimate_is_unbiased_for_the_difference_over_seeds_and_reviews() -> None:
    # Over many studies drawn from one world: the mean estimated variance matches the
    # variance of the difference itself (seeds, reviews and coins all redrawn).
    differences, estimates = [], []
    for seed in range(600):
        a, b = crossed(seed, seeds=3, reviews=120)
        result = verdict.across_seeds(a, b)
        differences.append(result.difference)
        estimates.append(result.se**2)
    assert np.mean(estimates) == pytest.approx(np.var(differences, ddof=1), rel=0.15)


def test_one_seed_is_refused_by_the_test_across_seeds() -> None:
    with pytest.raises(ValueError, match="two seeds"):
        verdict.across_seeds([[1, 0, 1]], [[1, 1, 0], [0, 1, 1]])
    with pytest.raises(ValueError, match="unaligned"):
        verdict.across_seeds([[1, 0], [1, 1]], [[1, 1, 0], [0, 1, 1]])


def test_identical_seeds_and_models_give_no_difference() -> None:
    same = [[1, 0, 1, 1], [1, 0, 1, 1]]
    result = verdict.across_seeds(same, same)
    assert (result.difference, result.p_value, result.low, result.high) == (0.0, 1.0, 0.0, 0.0)


def test_the_two_level_bootstrap_resamples_seeds_per_model_and_reviews_once() -> None:
    a, b = crossed(2, seeds=3, reviews=50)
    found = verdict.two_level_bootstrap(a, b, resamples=300, seed=9, confidence=0.9)
    # The same draws, one resample at a time.
    rng = np.random.default_rng(9)
    reviews = rng.multinomial(50, np.full(50, 1 / 50), size=300)
    seeds_a = rng.multinomial(3, np.full(3, 1 / 3), size=300)
    seeds_b = rng.multinomial(3, np.full(3, 1 / 3), size=300)
    expected = []
    for r in range(300):
        pick = np.repeat(np.arange(50), reviews[r])
        rows_a, rows_b = np.repeat(np.arange(3), seeds_a[r]), np.repeat(np.arange(3), seeds_b[r])
        expected.append(a[rows_a][:, pick].mean() - b[rows_b][:, pick].mean())
    assert (found.low, found.high) == pytest.approx(
        tuple(np.quantile(expected, [0.05, 0.95])), abs=1e-12
    )
    assert found.difference == pytest.approx(a.mean() - b.mean())


# --------------------------------------------------------------------------- ASO


def deepsig_uniforms(seed: int, iterations: int, n_a: int, n_b: int) -> tuple:
    """The uniform draws deepsig.aso(seed=seed) makes: one np.random.seed per iteration."""
    draws_a, draws_b = [], []
    for offset in range(1, iterations + 1):
        np.random.seed(seed + offset)
        draws_a.append(np.random.uniform(0, 1, n_a))
        draws_b.append(np.random.uniform(0, 1, n_b))
    return np.asarray(draws_a), np.asarray(draws_b)


@pytest.mark.parametrize(
    ("scores_a", "scores_b", "comparisons"),
    [
        ([0.85, 0.86, 0.84, 0.87, 0.855], [0.83, 0.84, 0.86, 0.82, 0.835], 1),
        ([0.71, 0.69, 0.74], [0.70, 0.73, 0.72, 0.68], 3),
        ([0.9, 0.91], [0.8, 0.81, 0.79], 1),
    ],
)
def test_aso_is_deepsigs_eps_min_draw_for_draw(
    scores_a: list[float], scores_b: list[float], comparisons: int
) -> None:
    import deepsig  # the reference implementation (a dev dependency)

    iterations = 200
    ours = verdict.aso(
        scores_a,
        scores_b,
        comparisons=comparisons,
        iterations=iterations,
        uniforms=deepsig_uniforms(7, iterations, len(scores_a), len(scores_b)),
    )
    reference = deepsig.aso(
        scores_a,
        scores_b,
        num_comparisons=comparisons,
        num_bootstrap_iterations=iterations,
        show_progress=False,
        seed=7,
    )
    assert ours == pytest.approx(float(reference), abs=1e-12)


def test_aso_orders_clearly_separated_seeds_and_not_equal_ones() -> None:
    better, worse = [0.90, 0.91, 0.92, 0.905], [0.80, 0.81, 0.79, 0.805]
    assert verdict.aso(better, worse) == 0.0
    assert verdict.aso(worse, better) > 0.99
    assert verdict.aso([0.8, 0.8], [0.8, 0.8]) == pytest.approx(0.5)


# --------------------------------------------------------------------------- Holm


def test_holm_adjusts_in_the_order_given() -> None:
    # By hand: sorted 0.01 x 3 = 0.03; 0.03 x 2 = 0.06; 0.04 x 1 -> at least 0.06.
    assert verdict.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert verdict.holm([0.02]) == [0.02]
    assert verdict.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # never below an earlier step


# --------------------------------------------------------------------------- power


def test_power_at_infinite_df_is_the_normal_closed_form() -> None:
    z = scipy_stats.norm.ppf(0.975)
    for shift in (0.5, 2.0, 2.8):
        expected = scipy_stats.norm.cdf(shift - z) + scipy_stats.norm.cdf(-shift - z)
        assert verdict.power_of_t(shift * 0.01, 0.01, math.inf) == pytest.approx(expected)
    assert verdict.power_of_t(0.0, 0.01, 7.0) == pytest.approx(0.05)


def test_the_detectable_difference_has_power_0_8() -> None:
    # Large df: (z_0.975 + z_0.8) standard errors, about 2.80.
    assert verdict.detectable(0.01, math.inf) == pytest.approx(0.028016, abs=2e-5)
    found = verdict.detectable(0.01, 4.0)
    assert verdict.power_of_t(found, 0.01, 4.0) == pytest.approx(0.8, abs=1e-6)
    assert found > 0.028  # few degrees of freedom need more


def test_seeds_for_one_point_is_the_fewest_with_power_0_8() -> None:
    parts = verdict.VarianceParts(
        seeds_a=3,
        seeds_b=3,
        reviews=5000,
        seed_var_a=0.006**2,
        seed_var_b=0.008**2,
        residual_a=0.1,
        residual_b=0.1,
        review_var=0.02,
    )
    power = verdict.power_across_seeds(parts)
    seeds = power.seeds_for_one_point
    assert seeds is not None and seeds > 3

    def at(s: int) -> float:
        variance, df = parts.at(s, s)
        return verdict.power_of_t(0.01, math.sqrt(variance), df)

    assert at(seeds) >= 0.8 > at(seeds - 1)
    assert power.detectable > 0.01  # three seeds were not enough for one point


def test_too_few_reviews_for_one_point_need_no_seed_count() -> None:
    # A review part with a standard error of 0.5 points: no number of seeds finds 1 point.
    parts = verdict.VarianceParts(3, 3, 300, 1e-4, 1e-4, 0.2, 0.2, review_var=0.075)
    assert verdict.power_across_seeds(parts).seeds_for_one_point is None


def test_one_seed_power_is_a_lower_bound_from_the_disagreements() -> None:
    a, b = crossed(4, seeds=1, reviews=300)
    power = verdict.power_one_seed(a, b)
    spread = np.var(a[0] - b[0], ddof=1)
    assert power.detectable == pytest.approx(verdict.detectable(math.sqrt(spread / 300), math.inf))
    seeds = power.seeds_for_one_point
    assert seeds is not None
    assert verdict.power_of_t(0.01, math.sqrt(spread / (300 * seeds)), 2 * (seeds - 1)) >= 0.8
    assert "lower bound" in power.basis


# --------------------------------------------------------------------------- description


def probabilities(seed: int, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    p1 = np.clip(rng.beta(2, 2, n) * 0.5 + np.where(labels == 1, 0.45, 0.05), 0.001, 0.999)
    return labels, np.stack([1 - p1, p1], axis=1)


def test_equal_mass_bins_are_scikit_learns_quantile_calibration_curve() -> None:
    from sklearn.calibration import calibration_curve

    labels, probs = probabilities(0)
    found = verdict.calibration(labels, probs, resamples=50)
    predicted = probs.argmax(axis=1)
    confidence = probs.max(axis=1)
    correct = (predicted == labels).astype(int)
    accuracy, mean_confidence = calibration_curve(
        correct, confidence, n_bins=10, strategy="quantile"
    )
    assert [b.accuracy for b in found.bins] == pytest.approx(list(accuracy))
    assert [b.confidence for b in found.bins] == pytest.approx(list(mean_confidence))
    # Every bin holds data, and about a tenth of it (equal mass), all above 0.5.
    assert len(found.bins) == 10 and all(35 <= b.reviews <= 45 for b in found.bins)
    assert min(b.low for b in found.bins) >= 0.5
    ece = sum(b.reviews / 400 * abs(b.accuracy - b.confidence) for b in found.bins)
    assert found.ece == pytest.approx(ece)
    assert found.ece_low <= found.ece <= found.ece_high


def test_brier_log_loss_and_bin_intervals_are_the_libraries() -> None:
    from sklearn.metrics import brier_score_loss, log_loss

    labels, probs = probabilities(1)
    found = verdict.calibration(labels, probs, resamples=20)
    assert found.brier == pytest.approx(brier_score_loss(labels, probs[:, 1]))
    assert found.log_loss == pytest.approx(log_loss(labels, probs))
    for b in found.bins:
        ci = scipy_stats.binomtest(b.correct, b.reviews).proportion_ci(0.95, method="wilson")
        assert (b.accuracy_low, b.accuracy_high) == pytest.approx((ci.low, ci.high))


def test_tied_confidences_leave_only_the_bins_that_hold_data() -> None:
    labels = [1, 0] * 50
    probs = [[0.1, 0.9] if y == 1 else [0.8, 0.2] for y in labels]
    found = verdict.calibration(labels, probs, resamples=20)
    assert sum(b.reviews for b in found.bins) == 100
    assert all(b.reviews > 0 for b in found.bins) and len(found.bins) == 2


def test_length_buckets_count_and_give_wilson_intervals() -> None:
    correct = [True, False, True, True, False, True]
    counts = [50, 120, 130, 300, 600, 700]
    buckets = verdict.length_buckets(correct, counts, (128, 256, 512))
    assert [(b.label, b.reviews, b.correct) for b in buckets] == [
        ("0–128", 2, 1),
        ("129–256", 1, 1),
        ("257–512", 1, 1),
        ("513+", 2, 1),
    ]
    ci = scipy_stats.binomtest(1, 2).proportion_ci(0.95, method="wilson")
    assert (buckets[0].accuracy_low, buckets[0].accuracy_high) == pytest.approx((ci.low, ci.high))
    empty = verdict.length_buckets([True], [10], (5, 20))
    assert empty[0].reviews == 0 and empty[0].accuracy is None and empty[0].accuracy_low is None


def test_a_models_mean_interval_is_wilson_for_one_run_and_a_t_interval_over_seeds() -> None:
    one = verdict.mean_interval([[1] * 170 + [0] * 30])
    ci = scipy_stats.binomtest(170, 200).proportion_ci(0.95, method="wilson")
    assert (one.mean, one.low, one.high, one.seeds) == pytest.approx((0.85, ci.low, ci.high, 1))
    # Every review right for exactly 3 of 4 seeds: no review part, so the interval is the
    # t interval of the per-seed accuracies (scipy).
    rng = np.random.default_rng(8)
    x = np.ones((4, 300))
    x[rng.integers(0, 4, 300), np.arange(300)] = 0
    found = verdict.mean_interval(x)
    accuracies = x.mean(axis=1)
    low, high = scipy_stats.t.interval(
        0.95, 3, loc=accuracies.mean(), scale=scipy_stats.sem(accuracies)
    )
    assert (found.low, found.high) == pytest.approx((low, high))


def test_a_learning_rates_validation_interval() -> None:
    ci = scipy_stats.binomtest(270, 300).proportion_ci(0.95, method="wilson")
    assert verdict.validation_interval([0.9], 300) == pytest.approx((ci.low, ci.high))
    # Seeds far apart: the t interval over seeds is the wider one.
    accs = [0.80, 0.90, 0.85]
    low, high = scipy_stats.t.interval(0.95, 2, loc=0.85, scale=scipy_stats.sem(accs))
    assert verdict.validation_interval(accs, 300) == pytest.approx((low, high))
    assert verdict.validation_interval([0.9], None) is None
