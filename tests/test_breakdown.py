"""Where the errors are: every figure checked against the ledger it comes from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from handmade_ledgers import write_run
from typer.testing import CliRunner

from imdb_cli.cli import app
from imdb_cli.compare import breakdown, stats
from imdb_cli.compare.comparison import compare
from imdb_cli.runs.ledger import read_ledger
from imdb_cli.runs.select import resolve_run
from imdb_cli.workspace import Workspace

CLASSES = ["comedy", "drama", "horror"]
# Ten reviews of a three-class run: true class and the run's class probabilities.
LABELS = [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]
PROBS = [
    [0.70, 0.20, 0.10],  # right, confidence 0.70
    [0.55, 0.40, 0.05],  # right, 0.55
    [0.30, 0.60, 0.10],  # wrong (drama), 0.60
    [0.10, 0.85, 0.05],  # right, 0.85
    [0.05, 0.90, 0.05],  # right, 0.90
    [0.45, 0.35, 0.20],  # wrong (comedy), 0.45
    [0.20, 0.75, 0.05],  # right, 0.75
    [0.02, 0.03, 0.95],  # right, 0.95
    [0.10, 0.15, 0.75],  # right, 0.75
    [0.15, 0.80, 0.05],  # wrong (drama), 0.80
]


@pytest.fixture
def three_classes(tmp_path: Path) -> Workspace:
    workspace = Workspace(tmp_path)
    write_run(workspace, "tiny-bert", "r1", labels=LABELS, probs=PROBS, label_names=CLASSES)
    return workspace


def test_confusion_counts_equal_the_ledgers_predictions(three_classes: Workspace) -> None:
    ledger = resolve_run(three_classes, "tiny-bert/r1").ledger
    assert ledger.test is not None
    predicted = ledger.test.predicted().tolist()
    found = breakdown.confusion(ledger)
    assert found.classes == CLASSES
    for i in range(3):
        for j in range(3):
            pairs = zip(ledger.test.labels, predicted, strict=True)
            assert found.matrix[i][j] == sum(1 for t, p in pairs if (t, p) == (i, j))
    assert sum(map(sum, found.matrix)) == ledger.test.samples
    # By hand: drama is predicted 5 times, 3 of them right; 4 drama reviews, 3 found.
    drama = found.per_class[1]
    assert (drama.precision, drama.recall, drama.support) == (3 / 5, 3 / 4, 4)
    assert drama.f1 == pytest.approx(2 * 0.6 * 0.75 / (0.6 + 0.75))
    assert found.macro_f1 == pytest.approx(np.mean([c.f1 for c in found.per_class]))
    horror = found.per_class[2]  # 2 of 3 found, never wrongly predicted
    assert (horror.precision, horror.recall) == (1.0, 2 / 3) and horror.f1 == pytest.approx(0.8)
    assert found.worst_class().f1 == min(c.f1 for c in found.per_class) == pytest.approx(2 / 3)


def test_ece_is_the_hand_computed_gap_between_confidence_and_accuracy(
    three_classes: Workspace,
) -> None:
    ledger = resolve_run(three_classes, "tiny-bert/r1").ledger
    found = breakdown.calibration(ledger, bins=5)
    # Equal-mass bins of the predicted class's probability, two reviews each (edges at
    # numpy's 20/40/60/80th percentiles: 0.59, 0.73, 0.77, 0.86):
    # 0.45 wrong, 0.55 right -> acc 0.5, conf 0.5
    # 0.60 wrong, 0.70 right -> acc 0.5, conf 0.65
    # 0.75 right, 0.75 right -> acc 1,   conf 0.75
    # 0.80 wrong, 0.85 right -> acc 0.5, conf 0.825
    # 0.90 right, 0.95 right -> acc 1,   conf 0.925
    by_hand = 2 / 10 * (0 + 0.15 + 0.25 + 0.325 + 0.075)
    assert found.ece == pytest.approx(by_hand, abs=1e-12)
    assert [b.reviews for b in found.bins] == [2, 2, 2, 2, 2]
    assert [b.accuracy for b in found.bins] == [0.5, 0.5, 1.0, 0.5, 1.0]
    assert found.bins[3].confidence == pytest.approx(0.825)
    assert found.accuracy == ledger.test.acc == 0.7  # type: ignore[union-attr]
    assert found.ece_low <= found.ece <= found.ece_high


def test_a_two_class_ledger_of_p_class_1_reads_the_same_as_its_matrix(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path)
    labels = [0, 1, 1, 0]
    write_run(workspace, "bert", "flat", labels=labels, right=[True, True, False, False])
    flat = read_ledger(workspace.model_runs("bert") / "flat")
    assert flat.test is not None
    probs = flat.test.prob_matrix()
    write_run(workspace, "modernbert", "matrix", labels=labels, probs=probs.tolist())
    matrix = read_ledger(workspace.model_runs("modernbert") / "matrix")
    assert breakdown.confusion(flat) == breakdown.confusion(matrix)
    assert breakdown.calibration(flat) == breakdown.calibration(matrix)
    assert breakdown.confusion(flat).matrix == [[1, 1], [1, 1]]


def test_length_buckets_split_the_test_reviews_by_full_token_count(
    three_classes: Workspace,
) -> None:
    ledger = resolve_run(three_classes, "tiny-bert/r1").ledger
    assert ledger.test is not None
    counts = dict(enumerate([40, 128, 129, 256, 300, 512, 513, 900, 60, 2000]))
    buckets = breakdown.length_buckets(ledger, counts)
    assert [(b.label, b.reviews) for b in buckets] == [
        ("0–128", 3),
        ("129–256", 2),
        ("257–512", 2),
        ("513+", 3),
    ]
    right = ledger.test.predicted() == np.asarray(ledger.test.labels)
    for bucket in buckets:
        inside = [
            i
            for i, n in counts.items()
            if n >= bucket.low and (bucket.high is None or n <= bucket.high)
        ]
        assert bucket.correct == int(right[inside].sum())
    with pytest.raises(KeyError):
        breakdown.length_buckets(ledger, {0: 10})


def test_compare_json_carries_every_figure_of_a_three_class_run(
    three_classes: Workspace,
) -> None:
    write_run(
        three_classes,
        "tiny-modernbert",
        "r2",
        labels=LABELS,
        probs=[[0.8, 0.1, 0.1]] * 10,  # always comedy
        label_names=CLASSES,
    )
    result = CliRunner().invoke(
        app,
        [
            "--workdir",
            str(three_classes.root),
            "compare",
            "tiny-bert",
            "tiny-modernbert",
            "-f",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    first, second = data["models"]
    assert first["errors"]["confusion"]["matrix"] == [[2, 1, 0], [1, 3, 0], [0, 1, 2]]
    assert second["errors"]["confusion"]["matrix"] == [[3, 0, 0], [4, 0, 0], [3, 0, 0]]
    assert first["errors"]["calibration"]["ece"] == pytest.approx(
        breakdown.calibration(resolve_run(three_classes, "tiny-bert").ledger).ece
    )
    (pair,) = data["pairs"]
    # tiny-bert right on 7, tiny-modernbert on 3 (the comedies); only tiny-modernbert never.
    assert (pair["a_right_b_wrong"], pair["a_wrong_b_right"]) == (5, 1)
    assert pair["acc_difference"] == pytest.approx(0.4)
    assert first["curve"][0]["val_acc"] == read_ledger(Path(first["run_path"])).epochs[0].val_acc
    # Handmade ledgers name no data cache, so accuracy by length says why it is missing.
    assert first["errors"]["length_buckets"] is None
    assert "no accuracy by length" in first["errors"]["length_buckets_note"]


def test_bootstrap_interval_of_a_pair_is_the_direct_resampling_of_its_ledgers(
    tmp_path: Path,
) -> None:
    workspace = Workspace(tmp_path)
    n = 300
    labels = [i % 2 for i in range(n)]
    rng = np.random.default_rng(7)
    right_a, right_b = rng.random(n) < 0.85, rng.random(n) < 0.78
    write_run(workspace, "bert", "a", labels=labels, right=right_a.tolist())
    write_run(workspace, "modernbert", "b", labels=labels, right=right_b.tolist())
    comparison = compare(workspace, ["bert", "modernbert"])
    (pair,) = comparison.pairs
    # Directly: resample the reviews one resample at a time with the same generator.
    ledger_a = read_ledger(workspace.model_runs("bert") / "a")
    ledger_b = read_ledger(workspace.model_runs("modernbert") / "b")
    assert ledger_a.test is not None and ledger_b.test is not None
    truth = np.asarray(ledger_a.test.labels)
    correct_a = ledger_a.test.predicted() == truth
    correct_b = ledger_b.test.predicted() == truth
    generator = np.random.default_rng(stats.BOOTSTRAP_SEED)
    differences = []
    for _ in range(stats.BOOTSTRAP_RESAMPLES):
        rows = generator.integers(0, n, size=n)
        differences.append(correct_a[rows].mean() - correct_b[rows].mean())
    low, high = np.quantile(differences, [0.025, 0.975])
    assert pair.bootstrap.low == pytest.approx(low, abs=1e-12)
    assert pair.bootstrap.high == pytest.approx(high, abs=1e-12)
    assert pair.bootstrap.difference == pytest.approx(correct_a.mean() - correct_b.mean())
    assert pair.to_dict()["acc_difference_ci_low"] == pair.bootstrap.low
