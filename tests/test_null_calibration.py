"""benchmarks/null_calibration.py at a small size: the verdict's test finds a difference
that is not there about 5% of the time, and its power figure is what it says."""

from __future__ import annotations

import json

import pytest
from benchmark_support import load_benchmark

calibration = load_benchmark("null_calibration")


def test_the_false_positive_rate_at_alpha_0_05_lies_in_0_03_to_0_07() -> None:
    # 1,000 comparisons per arm (standard error of the rate about 0.007), fixed seed; the
    # README gives the full size (4,000) in several worlds.
    result = calibration.simulate(calibration.World(), 1000, seed=11)
    assert 0.03 <= result.fpr <= 0.07
    # The measurement on 300 reviews: two seeds of a tiny model disagree on 67 to
    # 84 reviews; the simulated world is of that kind.
    assert 60 <= result.seed_disagreements <= 95


def test_the_verdicts_detectable_difference_is_found_about_80_percent_of_the_time() -> None:
    world = calibration.World(reviews=300, seeds=5)
    null = calibration.simulate(world, 150, seed=3)
    found = calibration.simulate(world, 400, difference=null.mean_detectable, seed=4)
    assert 0.7 <= found.power <= 0.9


def test_json_prints_the_rates_and_their_count(capsys: pytest.CaptureFixture[str]) -> None:
    assert calibration.main(["--json", "--simulations", "40", "--seed", "1"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["n_simulations"] == 40
    assert 0 <= data["fpr"] <= 1 and 0 <= data["power"] <= 1


def test_too_few_seeds_are_refused() -> None:
    with pytest.raises(SystemExit):
        calibration.parse_args(["--seeds", "1"])
