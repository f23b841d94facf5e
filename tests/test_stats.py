"""The statistics of `imdb compare`, checked against scipy and against hand computation."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from scipy import stats as scipy_stats

from imdb_cli.compare import stats


@pytest.mark.parametrize(("k", "n"), [(170, 200), (4421, 5000), (4577, 5000), (3, 10), (0, 50)])
def test_wilson_interval_matches_scipy(k: int, n: int) -> None:
    reference = scipy_stats.binomtest(k, n).proportion_ci(0.95, method="wilson")
    low, high = stats.wilson_interval(k, n)
    assert low == pytest.approx(reference.low, abs=1e-12)
    assert high == pytest.approx(reference.high, abs=1e-12)


def test_wilson_interval_never_leaves_zero_to_one_even_at_perfect_accuracy() -> None:
    low, high = stats.wilson_interval(40, 40)
    assert 0.9 < low < 1.0
    assert high == 1.0


def test_wilson_interval_of_the_studys_bert_result_is_about_0_9_points_wide() -> None:
    # 0.8842 on 5,000 reviews: standard error about 0.45 points, so about +-0.9 points.
    low, high = stats.wilson_interval(4421, 5000)
    assert 0.874 < low < 0.876 and 0.892 < high < 0.894


@pytest.mark.parametrize(("b", "c"), [(0, 0), (0, 1), (3, 9), (12, 12), (4, 20), (0, 24)])
def test_mcnemar_below_25_discordant_reviews_is_the_exact_binomial_test(b: int, c: int) -> None:
    result = stats.mcnemar_counts(b, c, 1000)
    assert result.method == "exact"
    expected = 1.0 if b + c == 0 else scipy_stats.binomtest(b, b + c, 0.5).pvalue
    assert result.p_value == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("b", "c"), [(5, 20), (40, 60), (120, 276), (300, 300)])
def test_mcnemar_from_25_discordant_reviews_is_chi_square_with_continuity_correction(
    b: int, c: int
) -> None:
    result = stats.mcnemar_counts(b, c, 5000)
    assert result.method == "chi2-cc"
    statistic = (abs(b - c) - 1) ** 2 / (b + c) if b != c else 0.0
    assert result.statistic == pytest.approx(statistic)
    assert result.p_value == pytest.approx(scipy_stats.chi2.sf(statistic, df=1), rel=1e-9)


def test_mcnemar_counts_only_the_reviews_where_the_models_disagree() -> None:
    # A 2x2 table by hand: both right 5, only A right 3, only B right 1, both wrong 2.
    a = [True] * 5 + [True] * 3 + [False] * 1 + [False] * 2
    b = [True] * 5 + [False] * 3 + [True] * 1 + [False] * 2
    result = stats.mcnemar(a, b)
    assert (result.b, result.c, result.n) == (3, 1, 11)
    # Exact two-sided: 2 * P(X <= 1 | X ~ Bin(4, 1/2)) = 2 * 5/16.
    assert result.p_value == pytest.approx(10 / 16)


def test_mcnemar_refuses_predictions_that_are_not_aligned() -> None:
    with pytest.raises(ValueError, match="unaligned"):
        stats.mcnemar([True, False], [True])


def test_a_large_lead_on_the_same_reviews_is_highly_significant() -> None:
    # The study's gap (0.9154 vs 0.8842 on 5,000 reviews) with few reviews only BERT gets.
    result = stats.mcnemar_counts(b=60, c=216, n=5000)
    assert result.p_value < 1e-15


def test_mean_std_is_the_sample_standard_deviation() -> None:
    values = [0.8842, 0.8911, 0.8790]
    mean, std = stats.mean_std(values)
    assert mean == pytest.approx(statistics.mean(values))
    assert std == pytest.approx(statistics.stdev(values))  # ddof=1
    by_hand = math.sqrt(sum((v - mean) ** 2 for v in values) / 2)
    assert std == pytest.approx(by_hand)


def test_one_run_has_a_mean_but_no_standard_deviation() -> None:
    assert stats.mean_std([0.9]) == (0.9, None)


def test_paired_bootstrap_is_the_percentile_of_resampled_differences() -> None:
    rng = np.random.default_rng(0)
    a, b = (rng.random(257) < 0.9).tolist(), (rng.random(257) < 0.8).tolist()
    # 1,234 resamples: not a multiple of the chunk size, so the chunking is exercised.
    found = stats.paired_bootstrap(a, b, resamples=1234, seed=5, confidence=0.9)
    generator = np.random.default_rng(5)
    x, y = np.asarray(a), np.asarray(b)
    differences = [
        x[rows].mean() - y[rows].mean()
        for rows in (generator.integers(0, 257, size=257) for _ in range(1234))
    ]
    assert (found.low, found.high) == pytest.approx(
        tuple(np.quantile(differences, [0.05, 0.95])), abs=1e-12
    )
    assert found.difference == pytest.approx(x.mean() - y.mean())
    assert (found.resamples, found.seed, found.confidence) == (1234, 5, 0.9)


def test_paired_bootstrap_of_identical_predictions_is_exactly_zero() -> None:
    same = [True, False, True, True] * 25
    found = stats.paired_bootstrap(same, same)
    assert (found.difference, found.low, found.high) == (0.0, 0.0, 0.0)


def test_paired_bootstrap_is_seeded_and_refuses_unaligned_input() -> None:
    a, b = [True] * 60 + [False] * 40, [True] * 50 + [False] * 50
    assert stats.paired_bootstrap(a, b) == stats.paired_bootstrap(a, b)
    assert stats.paired_bootstrap(a, b, seed=1) != stats.paired_bootstrap(a, b, seed=2)
    with pytest.raises(ValueError):
        stats.paired_bootstrap(a, b[:-1])
