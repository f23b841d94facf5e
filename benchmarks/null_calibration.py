"""A check of the checks: how often the verdict's test finds a difference that is not there,
and how often it finds one point that is.

    python benchmarks/null_calibration.py                 # the issue's setting, a table
    python benchmarks/null_calibration.py --json          # {"fpr": ..., "power": ..., ...}
    python benchmarks/null_calibration.py --reviews 5000 --seeds 5 --accuracy 0.9
    python benchmarks/null_calibration.py --bootstrap     # also the two-level bootstrap's rates

Each simulated comparison draws two models' per-review correctness on shared test reviews,
the way fine-tuning runs vary (a logistic model of correctness):

    P(model m, seed s right on review r) = logistic(mu_m + u_r + w_mr + v_ms)

u_r: how hard review r is, shared by both models; w_mr: what model m finds hard beyond
that (the models disagree on some reviews); v_ms: a seed's effect on all reviews at once;
and each run's right/wrong is a coin with that probability, which is the seed-by-review
noise (two runs of one model disagree on reviews near 0.5). The defaults match what the
issue measured on 300 test reviews of a tiny model: two seeds of one model disagree on
67 to 84 reviews, two models' runs on about 60 to 95.

Under "equal in truth" both models have the same mean accuracy over reviews and seeds (mu
alike); under "one point apart" model A's mu is raised so that its mean accuracy over the
population of reviews and seeds is `--difference` higher. The verdict's test
(`verdict.across_seeds`, alpha 0.05) is run on each comparison; the false-positive rate is
the share of "equal" comparisons it calls a difference, the power the share of "apart"
ones. Over n simulations the rate's standard error is sqrt(p (1 - p) / n): 0.005 at
p = 0.05 and n = 2,000.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import special
from scipy.optimize import brentq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from imdb_cli.compare import verdict


@dataclass(frozen=True)
class World:
    """The generative model's parameters (logit scale)."""

    accuracy: float = 0.75  # mean accuracy of model B over reviews and seeds
    review_sd: float = 1.6  # u: difficulty shared by both models
    model_review_sd: float = 0.6  # w: difficulty particular to a model
    seed_sd: float = 0.15  # v: a seed's effect on every review
    reviews: int = 300
    seeds: int = 3  # per model

    @property
    def total_sd(self) -> float:
        return math.sqrt(self.review_sd**2 + self.model_review_sd**2 + self.seed_sd**2)


_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(80)


def mean_accuracy(mu: float, sd: float) -> float:
    """E[logistic(mu + sd Z)], Z standard normal (Gauss-Hermite quadrature)."""
    return float((_WEIGHTS * special.expit(mu + sd * _NODES)).sum() / _WEIGHTS.sum())


def mu_for(accuracy: float, sd: float) -> float:
    """The logit mean that gives this mean accuracy."""
    return float(brentq(lambda mu: mean_accuracy(mu, sd) - accuracy, -20, 20))


def draw_pair(
    rng: np.random.Generator, world: World, mu_a: float, mu_b: float
) -> tuple[np.ndarray, np.ndarray]:
    """(A, B): seeds x reviews 0/1 correctness on the same test reviews."""
    shared = rng.normal(0.0, world.review_sd, world.reviews)

    def runs(mu: float) -> np.ndarray:
        logit = mu + shared + rng.normal(0.0, world.model_review_sd, world.reviews)
        seeds = rng.normal(0.0, world.seed_sd, (world.seeds, 1))
        return (rng.random((world.seeds, world.reviews)) < special.expit(logit + seeds)).astype(
            np.float64
        )

    return runs(mu_a), runs(mu_b)


DETECTABLE_SAMPLE = 200  # comparisons whose disagreements and power figure are averaged


@dataclass(frozen=True)
class Result:
    fpr: float
    power: float
    n_simulations: int  # per arm: that many "equal" and that many "apart" comparisons
    alpha: float
    difference: float
    world: dict[str, float | int]
    seed_disagreements: float  # mean reviews two seeds of one model disagree on
    model_disagreements: float  # ... and two models' runs
    mean_detectable: float  # the verdict's own power figure, averaged over "equal" ones
    bootstrap_fpr: float | None = None
    bootstrap_power: float | None = None
    seconds: float = 0.0


def simulate(
    world: World,
    simulations: int,
    *,
    difference: float = verdict.ONE_POINT,
    alpha: float = verdict.ALPHA,
    seed: int = 0,
    bootstrap: bool = False,
    bootstrap_resamples: int = 500,
) -> Result:
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    mu_b = mu_for(world.accuracy, world.total_sd)
    mu_a = mu_for(world.accuracy + difference, world.total_sd)
    found = {"equal": 0, "apart": 0}
    booted = {"equal": 0, "apart": 0}
    disagree_seeds, disagree_models, detectable = [], [], []
    for number in range(simulations):
        for arm, mu in (("equal", mu_b), ("apart", mu_a)):
            a, b = draw_pair(rng, world, mu, mu_b)
            result = verdict.across_seeds(a, b)
            found[arm] += result.p_value < alpha
            if arm == "equal" and number < DETECTABLE_SAMPLE:
                disagree_seeds.append(float((a[0] != a[1]).sum()))
                disagree_models.append(float((a[0] != b[0]).sum()))
                detectable.append(verdict.power_across_seeds(result.parts).detectable)
            if bootstrap:
                interval = verdict.two_level_bootstrap(
                    a,
                    b,
                    confidence=1 - alpha,
                    resamples=bootstrap_resamples,
                    seed=int(rng.integers(2**31)),
                )
                booted[arm] += not interval.low <= 0 <= interval.high
    return Result(
        fpr=found["equal"] / simulations,
        power=found["apart"] / simulations,
        n_simulations=simulations,
        alpha=alpha,
        difference=difference,
        world=asdict(world),
        seed_disagreements=float(np.mean(disagree_seeds)),
        model_disagreements=float(np.mean(disagree_models)),
        mean_detectable=float(np.mean(detectable)),
        bootstrap_fpr=booted["equal"] / simulations if bootstrap else None,
        bootstrap_power=booted["apart"] / simulations if bootstrap else None,
        seconds=time.perf_counter() - started,
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = World()
    parser.add_argument("--simulations", type=int, default=4000, help="comparisons per arm")
    parser.add_argument("--reviews", type=int, default=defaults.reviews)
    parser.add_argument("--seeds", type=int, default=defaults.seeds, help="seeds per model")
    parser.add_argument("--accuracy", type=float, default=defaults.accuracy)
    parser.add_argument("--review-sd", type=float, default=defaults.review_sd)
    parser.add_argument("--model-review-sd", type=float, default=defaults.model_review_sd)
    parser.add_argument("--seed-sd", type=float, default=defaults.seed_sd)
    parser.add_argument("--difference", type=float, default=verdict.ONE_POINT)
    parser.add_argument("--alpha", type=float, default=verdict.ALPHA)
    parser.add_argument("--seed", type=int, default=0, help="of the simulation")
    parser.add_argument("--bootstrap", action="store_true", help="also the bootstrap's rates")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if args.simulations < 1 or args.seeds < 2 or args.reviews < 2:
        parser.error("need --simulations >= 1, --seeds >= 2 and --reviews >= 2")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    world = World(
        accuracy=args.accuracy,
        review_sd=args.review_sd,
        model_review_sd=args.model_review_sd,
        seed_sd=args.seed_sd,
        reviews=args.reviews,
        seeds=args.seeds,
    )
    result = simulate(
        world,
        args.simulations,
        difference=args.difference,
        alpha=args.alpha,
        seed=args.seed,
        bootstrap=args.bootstrap,
    )
    if args.json:
        print(json.dumps(asdict(result), indent=2))
        return 0
    se = math.sqrt(result.fpr * (1 - result.fpr) / result.n_simulations)
    print(
        f"{world.seeds} seeds a model, {world.reviews} test reviews, accuracy about "
        f"{world.accuracy:.2f}; two seeds disagree on {result.seed_disagreements:.0f} reviews, "
        f"two models on {result.model_disagreements:.0f}"
    )
    print(f"false-positive rate at alpha {result.alpha}: {result.fpr:.4f} (se {se:.4f})")
    print(f"power at a difference of {result.difference:g}: {result.power:.4f}")
    print(f"the verdict's own detectable difference (power 0.8): {result.mean_detectable:.4f}")
    if result.bootstrap_fpr is not None:
        print(
            f"two-level bootstrap (interval excludes 0): false positives "
            f"{result.bootstrap_fpr:.4f}, power {result.bootstrap_power:.4f}"
        )
    print(f"{result.n_simulations} simulations per arm in {result.seconds:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
