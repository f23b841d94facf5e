"""Figures of a comparison (`imdb compare --plot DIR` and the study report).

Every figure is drawn from the `Comparison` alone, which holds the ledgers' numbers:
learning curves per epoch, confusion matrices, reliability diagrams, accuracy by review
length, and each model's learning-rate grid when a sweep chose its rate. One colour per
model throughout, every compared model on each figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from imdb_cli.analysis.plotting import DPI, save_figure
from imdb_cli.compare.comparison import Comparison, ModelRow

FILES = {
    "learning_curves": "learning_curves.png",
    "confusion": "confusion_matrices.png",
    "reliability": "reliability.png",
    "lengths": "accuracy_by_length.png",
    "lr_grid": "learning_rates.png",
}


def model_colours(count: int) -> list[tuple[float, float, float, float]]:
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    return [palette(i % 10) for i in range(count)]


def learning_curves_figure(rows: Sequence[ModelRow]) -> Figure:
    """Loss and accuracy per epoch: train dashed, validation solid, one colour per model."""
    fig = Figure(figsize=(11.0, 4.6), dpi=DPI, layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    for row, colour in zip(rows, model_colours(len(rows)), strict=True):
        epochs = [p.epoch for p in row.curve]
        for ax, train, val in (
            (loss_ax, [p.train_loss for p in row.curve], [p.val_loss for p in row.curve]),
            (acc_ax, [p.train_acc for p in row.curve], [p.val_acc for p in row.curve]),
        ):
            ax.plot(
                epochs, train, linestyle="--", marker="o", color=colour, label=f"{row.label} train"
            )
            ax.plot(epochs, val, linestyle="-", marker="s", color=colour, label=f"{row.label} val")
    epochs_all = sorted({p.epoch for row in rows for p in row.curve})
    for ax, name in ((loss_ax, "loss (cross-entropy)"), (acc_ax, "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.set_xticks(epochs_all)
        ax.grid(alpha=0.3)
    acc_ax.legend(fontsize=8, loc="best")
    fig.suptitle(
        "Learning curves (train: dashed, over the epoch's reviews; val: solid)", fontsize=11
    )
    return fig


def confusion_figure(rows: Sequence[ModelRow]) -> Figure:
    """One confusion matrix per model: counts, shaded by the share of each true class."""
    classes = len(rows[0].errors.confusion.classes)
    side = float(np.clip(1.0 + 0.9 * classes, 3.6, 12))
    fig = Figure(figsize=(side * len(rows) + 1.0, side + 0.8), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, len(rows), squeeze=False)[0]
    image = None
    for ax, row in zip(axes, rows, strict=True):
        confusion = row.errors.confusion
        counts = np.asarray(confusion.matrix, dtype=np.int64)
        totals = counts.sum(axis=1, keepdims=True)
        shares = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
        image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
        for i in range(counts.shape[0]):
            for j in range(counts.shape[1]):
                ax.text(
                    j,
                    i,
                    f"{counts[i, j]}\n{shares[i, j]:.0%}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if shares[i, j] > 0.6 else "black",
                )
        ticks = list(range(len(confusion.classes)))
        ax.set_xticks(ticks, confusion.classes, rotation=45 if classes > 3 else 0, fontsize=8)
        ax.set_yticks(ticks, confusion.classes, fontsize=8)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title(f"{row.label} (macro F1 {confusion.macro_f1:.3f})", fontsize=10)
    if image is not None:
        fig.colorbar(image, ax=list(axes), shrink=0.7, label="share of the true class")
    fig.suptitle("Confusion matrices on the test split (counts and row shares)", fontsize=11)
    return fig


def reliability_figure(rows: Sequence[ModelRow]) -> Figure:
    """Accuracy against confidence per equal-mass bin (top label), each bin's accuracy with
    its Wilson interval, and how many reviews each bin holds."""
    fig = Figure(figsize=(7.0, 7.6), dpi=DPI, layout="constrained")
    top, bottom = fig.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    top.plot([0, 1], [0, 1], color="#999999", linestyle=":", label="perfectly calibrated")
    colours = model_colours(len(rows))
    lowest = 1.0
    for row, colour in zip(rows, colours, strict=True):
        calibration = row.errors.calibration
        bins = calibration.bins
        xs = [b.confidence for b in bins]
        ys = [b.accuracy for b in bins]
        top.errorbar(
            xs,
            ys,
            yerr=[
                [b.accuracy - b.accuracy_low for b in bins],
                [b.accuracy_high - b.accuracy for b in bins],
            ],
            marker="o",
            color=colour,
            capsize=3,
            label=(
                f"{row.label} (ECE {calibration.ece:.3f}, {calibration.ece_low:.3f}–"
                f"{calibration.ece_high:.3f})"
            ),
        )
        bottom.plot(xs, [b.reviews for b in bins], marker="o", color=colour)
        lowest = min(lowest, *(b.low for b in bins))
    # Equal-mass bins hold data only where the confidences are: show that range.
    left = max(0.0, min(0.5, lowest) - 0.02)
    top.set_xlim(left, 1.0)
    top.set_ylim(0, 1.02)
    top.set_ylabel("accuracy in the bin (95% Wilson interval)")
    top.legend(fontsize=8, loc="lower right")
    top.grid(alpha=0.3)
    bottom.set_xlabel("confidence: probability of the predicted class (bin mean)")
    bottom.set_ylabel("reviews in the bin")
    bottom.set_ylim(bottom=0)
    bottom.grid(alpha=0.3)
    fig.suptitle(
        "Reliability on the test split, equal-mass bins (below the diagonal: over-confident)",
        fontsize=11,
    )
    return fig


def lengths_figure(rows: Sequence[ModelRow]) -> Figure:
    """Test accuracy per bucket of the full review's token count, bars per model, each
    with its interval and count."""
    with_lengths = [r for r in rows if r.errors.lengths]
    buckets = with_lengths[0].errors.lengths or []
    fig = Figure(figsize=(max(7.0, 2.2 * len(buckets) + 2), 4.8), dpi=DPI, layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(with_lengths)
    for k, (row, colour) in enumerate(zip(with_lengths, model_colours(len(rows)), strict=False)):
        values = [
            b.accuracy if b.accuracy is not None else np.nan for b in row.errors.lengths or []
        ]
        xs = np.arange(len(values)) - 0.4 + width * (k + 0.5)
        buckets = row.errors.lengths or []
        bars = ax.bar(
            xs,
            values,
            width=width,
            color=colour,
            label=f"{row.label} (max {row.max_length} tokens)",
        )
        ax.errorbar(
            xs,
            values,
            yerr=[
                [
                    b.accuracy - b.accuracy_low
                    if b.accuracy is not None and b.accuracy_low is not None
                    else 0.0
                    for b in buckets
                ],
                [
                    b.accuracy_high - b.accuracy
                    if b.accuracy is not None and b.accuracy_high is not None
                    else 0.0
                    for b in buckets
                ],
            ],
            fmt="none",
            ecolor="#333333",
            capsize=3,
        )
        for bar, bucket in zip(bars, row.errors.lengths or [], strict=True):
            ax.annotate(
                f"n={bucket.reviews}",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=7,
            )
    ax.set_xticks(range(len(buckets)), [f"{b.label}" for b in buckets])
    ax.set_xlabel("full review length in tokens (before truncation)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.08)
    # Where the runs' max length falls on a bucket edge, the reviews right of it were cut.
    for length in sorted({r.max_length for r in with_lengths if r.max_length is not None}):
        edge = next((i for i, b in enumerate(buckets) if b.high == length), None)
        if edge is not None:
            ax.axvline(edge + 0.5, color="#555555", linestyle="--", linewidth=1)
            ax.annotate(
                f"cut at {length} tokens →",
                (edge + 0.5, 1.04),
                xytext=(4, 0),
                textcoords="offset points",
                fontsize=8,
                va="center",
            )
    fig.legend(
        loc="outside lower center", ncol=min(len(with_lengths), 4), fontsize=8, frameon=False
    )
    ax.grid(axis="y", alpha=0.3)
    fig.suptitle(
        "Accuracy by review length (95% Wilson intervals; a description, not what cutting costs)",
        fontsize=11,
    )
    return fig


def lr_grid_figure(rows: Sequence[ModelRow]) -> Figure:
    """Mean validation accuracy against learning rate, per swept model; the selected rate
    is the ringed point."""
    fig = Figure(figsize=(7.5, 4.8), dpi=DPI, layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    for row, colour in zip(rows, model_colours(len(rows)), strict=True):
        if row.sweep is None:
            continue
        done = [(r.lr, r.mean_val_acc) for r in row.sweep.rates if r.mean_val_acc is not None]
        ax.plot(
            [lr for lr, _ in done],
            [acc for _, acc in done],
            marker="o",
            color=colour,
            label=f"{row.label} (over {len(row.sweep.seeds)} seed(s))",
        )
        chosen = [(lr, acc) for lr, acc in done if lr == row.sweep.selected_lr]
        ax.scatter(
            [lr for lr, _ in chosen],
            [acc for _, acc in chosen],
            s=180,
            facecolors="none",
            edgecolors=colour,
            linewidths=1.6,
        )
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("validation accuracy (best epoch, mean over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.suptitle("Learning rates tried; ringed: the one selected (validation only)", fontsize=11)
    return fig


def write_figures(comparison: Comparison, out_dir: Path) -> dict[str, Path]:
    """Every figure the comparison has data for, as PNGs in `out_dir`; name -> path."""
    rows = comparison.rows
    written = {
        "learning_curves": save_figure(
            learning_curves_figure(rows), out_dir / FILES["learning_curves"]
        ),
        "confusion": save_figure(confusion_figure(rows), out_dir / FILES["confusion"]),
        "reliability": save_figure(reliability_figure(rows), out_dir / FILES["reliability"]),
    }
    if any(r.errors.lengths for r in rows):
        written["lengths"] = save_figure(lengths_figure(rows), out_dir / FILES["lengths"])
    if any(r.sweep for r in rows):
        written["lr_grid"] = save_figure(lr_grid_figure(rows), out_dir / FILES["lr_grid"])
    return written
