"""A ledger read back, checked against itself: what its per-review data gives, what its epochs
show, values that no run can produce.

The ledger's types (schema_version's too) are checked where it is decoded (runs.ledger,
records.py); these functions take the
decoded values and check that they agree: the test accuracy and loss recomputed from the
per-review labels and probabilities, probability rows that sum to 1, accuracies in [0, 1],
finite losses that are not negative, epochs numbered in order, a best epoch that is one of
them with the best validation accuracy they show. `check` runs them all; runs.ledger calls
it once per ledger read and names the ledger and the field of any `Contradiction`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from imdb_cli.errors import shown

if TYPE_CHECKING:
    from imdb_cli.runs.ledger import EpochRecord, Ledger, TestRecord

# Probabilities are softmax outputs stored from float32: a row sums to 1 within about 1e-6.
PROB_SUM_TOLERANCE = 1e-4
# The test loss is the mean cross-entropy of the logits in float32; -log of the stored
# probabilities gives it within about 1e-6 (reviews whose probability underflowed aside).
LOSS_TOLERANCE = 1e-3
_TINY_PROBABILITY = 1e-30  # below it, a float32 probability has lost its precision


class Contradiction(ValueError):
    """A value of a ledger that its own data contradicts; the message names the field."""


def _accuracy(value: float, field: str) -> None:
    if not (math.isfinite(value) and 0 <= value <= 1):
        raise Contradiction(f"'{field}' {shown(value)} is not an accuracy in [0, 1]")


def _loss(value: float, field: str) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise Contradiction(f"'{field}' {shown(value)} is not a loss (finite, not negative)")


def _not_negative(value: float, field: str) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise Contradiction(f"'{field}' {shown(value)} should be a finite number >= 0")


def check_epochs(epochs: Sequence[EpochRecord]) -> None:
    """Each epoch's metrics are possible, and the epochs are numbered 1, 2, ... in order
    (a resumed run continues the count; early stopping ends it)."""
    for i, record in enumerate(epochs):
        at = f"epochs[{i}]"
        if record.epoch != i + 1:
            raise Contradiction(f"'{at}.epoch' is {record.epoch}; epoch {i + 1} belongs there")
        for name in ("train_acc", "val_acc"):
            _accuracy(getattr(record, name), f"{at}.{name}")
        for name in ("train_loss", "val_loss"):
            _loss(getattr(record, name), f"{at}.{name}")
        for name in (
            "train_samples",
            "val_samples",
            "train_seconds",
            "eval_seconds",
            "train_samples_per_s",
            "lr",
        ):
            _not_negative(getattr(record, name), f"{at}.{name}")


def check_best(
    epochs: Sequence[EpochRecord], best_epoch: int | None, best_val_acc: float | None
) -> None:
    """The best epoch is one of the epochs, and the best validation accuracy is the one that
    epoch shows and the highest any epoch shows."""
    if best_epoch is None or best_val_acc is None:
        if (best_epoch is None) != (best_val_acc is None):
            raise Contradiction("'best_epoch' and 'best_val_acc' should be given together")
        if epochs:
            raise Contradiction(f"'best_epoch' is missing, but {len(epochs)} epoch(s) are")
        return
    numbers = [record.epoch for record in epochs]
    if best_epoch not in numbers:
        raise Contradiction(f"field 'best_epoch' {best_epoch} is not one of its epochs")
    _accuracy(best_val_acc, "best_val_acc")
    shown_there = epochs[numbers.index(best_epoch)].val_acc
    if not math.isclose(best_val_acc, shown_there, abs_tol=1e-9):
        raise Contradiction(
            f"'best_val_acc' {best_val_acc:.6g} is not epoch {best_epoch}'s validation "
            f"accuracy ({shown_there:.6g})"
        )
    highest = max(record.val_acc for record in epochs)
    if best_val_acc < highest - 1e-9:
        raise Contradiction(
            f"'best_val_acc' {best_val_acc:.6g} is below the highest validation accuracy of its "
            f"epochs ({highest:.6g})"
        )


def check_test(test: TestRecord, classes: int, epochs: Sequence[int]) -> None:
    """The test result agrees with its per-review data: as many labels and probability rows
    as review ids, one probability per class in each row summing to 1, labels that are
    classes, and the accuracy and loss those give."""
    if epochs and test.epoch not in epochs:
        raise Contradiction(f"'test.epoch' {test.epoch} is not one of its epochs")
    _accuracy(test.acc, "test.acc")
    _loss(test.loss, "test.loss")
    n = len(test.review_ids)
    if len(test.labels) != n or len(test.probs) != n:
        raise Contradiction(
            f"'test' holds {n} review ids, {len(test.labels)} labels and {len(test.probs)} "
            "probabilities; they should be as many"
        )
    if n == 0:
        return
    if n != test.samples:
        raise Contradiction(f"'test.samples' is {test.samples} but it lists {n} reviews")
    if any(isinstance(row, list) for row in test.probs):
        widths = {len(row) if isinstance(row, list) else 1 for row in test.probs}
        if widths != {classes}:
            raise Contradiction(
                f"'test.probs' rows should each hold one probability per class ({classes})"
            )
    elif classes != 2:
        raise Contradiction(f"'test.probs' holds one value per review, for {classes} classes")
    raw = np.asarray(test.probs, dtype=np.float64)
    if not (np.isfinite(raw).all() and raw.min() >= 0 and raw.max() <= 1):
        raise Contradiction("'test.probs' holds values outside [0, 1]")
    probs = test.prob_matrix()
    sums = probs.sum(axis=1)
    off = int(np.argmax(np.abs(sums - 1)))
    if abs(sums[off] - 1) > PROB_SUM_TOLERANCE:
        raise Contradiction(
            f"'test.probs' row {off} sums to {sums[off]:.6g}, not 1 (one probability per class)"
        )
    labels = np.asarray(test.labels, dtype=np.int64)
    if labels.min() < 0 or labels.max() >= classes:
        raise Contradiction(f"'test.labels' holds a class outside 0..{classes - 1}")
    _recomputed_accuracy(test.acc, probs, labels)
    _recomputed_loss(test.loss, probs, labels)


def _recomputed_accuracy(acc: float, probs: np.ndarray, labels: np.ndarray) -> None:
    """The accuracy the probabilities give. The run counted argmax of the logits; argmax of
    their float32 softmax can differ where two classes' probabilities came out equal, so
    each such tie may count either way."""
    n = len(labels)
    top = np.sort(probs, axis=1)[:, -2:] if probs.shape[1] > 1 else probs
    ties = int((top[:, -1] == top[:, 0]).sum()) if probs.shape[1] > 1 else 0
    correct = int((probs.argmax(axis=1) == labels).sum())
    if abs(acc * n - correct) > ties + 1e-6:
        raise Contradiction(
            f"'test.acc' {acc:.6g} is not what its per-review labels and probabilities give "
            f"({correct}/{n} = {correct / n:.6g})"
        )


def _recomputed_loss(loss: float, probs: np.ndarray, labels: np.ndarray) -> None:
    """The mean cross-entropy the probabilities give (not checked when a review's
    probability of its label underflowed: its -log is no longer exact)."""
    picked = probs[np.arange(len(labels)), labels]
    if picked.min() < _TINY_PROBABILITY:
        return
    expected = float(-np.log(picked).mean())
    if not math.isclose(loss, expected, rel_tol=LOSS_TOLERANCE, abs_tol=LOSS_TOLERANCE):
        raise Contradiction(
            f"'test.loss' {loss:.6g} is not what its per-review labels and probabilities give "
            f"({expected:.6g})"
        )


def check(ledger: Ledger) -> None:
    """Every check of a decoded ledger (runs.ledger calls it on each read)."""
    check_epochs(ledger.epochs)
    check_best(ledger.epochs, ledger.best_epoch, ledger.best_val_acc)
    if ledger.test is not None:
        numbers = [record.epoch for record in ledger.epochs]
        check_test(ledger.test, len(ledger.label_names), numbers)
