"""Where a run's test errors are: confusion matrix, per-class figures, calibration, length.

Everything here is computed from one ledger's per-review test record (labels, class
probabilities, predictions) and, for the length buckets, the full token count of each
test review. Nothing assumes two classes: class names come from the run
(`ledger.label_names`), probabilities are `[reviews, classes]`.

- confusion matrix and per-class precision, recall, F1: scikit-learn's metrics;
- calibration: top-label expected calibration error (ECE) over equal-width confidence
  bins, where confidence is the predicted class's probability: ECE = sum over bins of
  (reviews in bin / reviews) * |accuracy in bin - mean confidence in bin|. A model that is
  right more often can still be worse at knowing when it is unsure;
- accuracy by review length: buckets of the full review's token count before
  truncation, which shows what cutting reviews at the max length costs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from imdb_cli.runs.ledger import Ledger, TestRecord

CALIBRATION_BINS = 10
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


@dataclass(frozen=True)
class CalibrationBin:
    low: float
    high: float
    reviews: int
    accuracy: float | None  # None for an empty bin
    confidence: float | None  # mean predicted-class probability in the bin


@dataclass(frozen=True)
class Calibration:
    ece: float
    bins: list[CalibrationBin]
    mean_confidence: float
    accuracy: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LengthBucket:
    low: int  # full token count, inclusive
    high: int | None  # inclusive; None: no upper bound
    reviews: int
    correct: int

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.reviews if self.reviews else None

    @property
    def label(self) -> str:
        return f"{self.low}+" if self.high is None else f"{self.low}–{self.high}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "label": self.label, "accuracy": self.accuracy}


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
    """Top-label ECE and the reliability diagram's bins (equal width over [0, 1])."""
    test = ledger.test
    assert test is not None
    probs = test.prob_matrix()
    predicted = test.predicted()
    confidence = probs[np.arange(len(probs)), predicted]
    correct = predicted == _labels(test)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Bin b holds confidences in (edge_b, edge_b+1]; a confidence of exactly 0 joins bin 0.
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    rows: list[CalibrationBin] = []
    ece = 0.0
    for b in range(bins):
        inside = which == b
        n = int(inside.sum())
        if n == 0:
            rows.append(CalibrationBin(float(edges[b]), float(edges[b + 1]), 0, None, None))
            continue
        accuracy = float(correct[inside].mean())
        mean_confidence = float(confidence[inside].mean())
        ece += n / len(confidence) * abs(accuracy - mean_confidence)
        rows.append(
            CalibrationBin(float(edges[b]), float(edges[b + 1]), n, accuracy, mean_confidence)
        )
    return Calibration(
        ece=ece,
        bins=rows,
        mean_confidence=float(confidence.mean()),
        accuracy=float(correct.mean()),
    )


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
    counts = np.asarray([token_counts[int(rid)] for rid in test.review_ids], dtype=np.int64)
    lows = [0, *(edge + 1 for edge in edges)]
    highs: list[int | None] = [*edges, None]
    buckets = []
    for low, high in zip(lows, highs, strict=True):
        inside = counts >= low if high is None else (counts >= low) & (counts <= high)
        buckets.append(LengthBucket(low, high, int(inside.sum()), int(correct[inside].sum())))
    return buckets
