"""Where a run's test errors are: confusion matrix, per-class figures, calibration, length.

Everything here is computed from one ledger's per-review test record (labels, class
probabilities, predictions) and, for the length buckets, the full token count of each
test review. Nothing assumes two classes: class names come from the run
(`ledger.label_names`), probabilities are `[reviews, classes]`.

- confusion matrix and per-class precision, recall, F1: scikit-learn's metrics;
- calibration: top-label expected calibration error (ECE) over equal-mass confidence
  bins, with a bootstrap interval, Brier score and log loss (verdict.calibration). A
  model that is right more often can still be worse at knowing when it is unsure;
- accuracy by review length: buckets of the full review's token count before
  truncation, with counts and an interval per bucket (verdict.length_buckets). A
  description: how long reviews fare says nothing by itself about what cutting them
  costs, which only a run at a longer max length shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from imdb_cli.compare import verdict
from imdb_cli.compare.verdict import Calibration, LengthBucket
from imdb_cli.runs.ledger import Ledger, TestRecord

CALIBRATION_BINS = verdict.CALIBRATION_BINS
# Bucket edges in tokens (special tokens included): the max lengths people train at, so
# a bucket says which reviews a run at that length sees whole.
LENGTH_EDGES = (128, 256, 512)


@dataclass(frozen=True)
class ClassFigures:
    name: str
    precision: float
    recall: float
    f1: float
    support: int  # test reviews of this class


@dataclass(frozen=True)
class Confusion:
    """Rows: true class; columns: predicted class (scikit-learn's convention)."""

    classes: list[str]
    matrix: list[list[int]]
    per_class: list[ClassFigures]
    macro_f1: float

    def worst_class(self) -> ClassFigures:
        return min(self.per_class, key=lambda c: (c.f1, c.name))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _labels(test: TestRecord) -> np.ndarray:
    return np.asarray(test.labels, dtype=np.int64)


def class_count(ledger: Ledger) -> int:
    assert ledger.test is not None
    return max(len(ledger.label_names), ledger.test.prob_matrix().shape[1])


def confusion(ledger: Ledger) -> Confusion:
    """Confusion matrix and per-class precision, recall and F1 of the test predictions."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    test = ledger.test
    assert test is not None
    count = class_count(ledger)
    names = [*ledger.label_names, *[f"class {i}" for i in range(len(ledger.label_names), count)]]
    classes = list(range(count))
    truth, predicted = _labels(test), test.predicted()
    matrix = confusion_matrix(truth, predicted, labels=classes)
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=classes, zero_division=0
    )
    per_class = [
        ClassFigures(names[i], float(precision[i]), float(recall[i]), float(f1[i]), int(support[i]))
        for i in classes
    ]
    return Confusion(
        classes=names,
        matrix=[[int(v) for v in row] for row in matrix],
        per_class=per_class,
        macro_f1=float(np.mean(f1)),
    )


def calibration(ledger: Ledger, bins: int = CALIBRATION_BINS) -> Calibration:
    """Top-label calibration of the test predictions over equal-mass bins."""
    test = ledger.test
    assert test is not None
    return verdict.calibration(test.labels, test.prob_matrix(), bins=bins)


def length_buckets(
    ledger: Ledger, token_counts: dict[int, int], edges: Sequence[int] = LENGTH_EDGES
) -> list[LengthBucket]:
    """Test accuracy by the full token count of each review (review id -> count)."""
    test = ledger.test
    assert test is not None
    correct = test.predicted() == _labels(test)
    missing = [rid for rid in test.review_ids if int(rid) not in token_counts]
    if missing:
        raise KeyError(f"no token count for test review {missing[0]}")
    counts = [token_counts[int(rid)] for rid in test.review_ids]
    return verdict.length_buckets(correct.tolist(), counts, edges)
