"""The comparison's figures draw the ledgers' numbers: checked on the figures' own data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from handmade_ledgers import write_run
from PIL import Image
from typer.testing import CliRunner

from imdb_cli.analysis import plotting
from imdb_cli.cli import app
from imdb_cli.compare import breakdown, figures
from imdb_cli.compare.comparison import Errors, ModelRow, compare
from imdb_cli.runs.ledger import read_ledger
from imdb_cli.workspace import Workspace

N = 120
LABELS = [i % 2 for i in range(N)]
CURVES = {
    "bert": [(0.61, 0.70, 0.52, 0.78), (0.41, 0.83, 0.40, 0.86), (0.30, 0.89, 0.38, 0.84)],
    "modernbert": [(0.55, 0.74, 0.45, 0.82), (0.33, 0.88, 0.37, 0.87), (0.21, 0.93, 0.41, 0.85)],
}


@pytest.fixture
def study(tmp_path: Path) -> Workspace:
    workspace = Workspace(tmp_path / "ws")
    rng = np.random.default_rng(3)
    for model, chance in (("bert", 0.8), ("modernbert", 0.88)):
        write_run(
            workspace,
            model,
            "r1",
            labels=LABELS,
            right=(rng.random(N) < chance).tolist(),
            epochs=3,
            best_epoch=2,
            curve=CURVES[model],
        )
    return workspace


def rows_of(workspace: Workspace) -> list[ModelRow]:
    return compare(workspace, ["bert", "modernbert"]).rows


def test_learning_curves_are_the_ledgers_epochs(study: Workspace) -> None:
    rows = rows_of(study)
    loss_ax, acc_ax = figures.learning_curves_figure(rows).axes
    loss = {line.get_label(): line for line in loss_ax.lines}
    acc = {line.get_label(): line for line in acc_ax.lines}
    for row in rows:
        epochs = read_ledger(Path(row.run_path)).epochs
        for lines, split, metric in (
            (loss, "train", "train_loss"),
            (loss, "val", "val_loss"),
            (acc, "train", "train_acc"),
            (acc, "val", "val_acc"),
        ):
            line = lines[f"{row.label} {split}"]
            assert list(line.get_xdata()) == [e.epoch for e in epochs]
            assert list(line.get_ydata()) == [getattr(e, metric) for e in epochs]
    assert [e.val_acc for e in read_ledger(Path(rows[0].run_path)).epochs] == [0.78, 0.86, 0.84]


def test_confusion_figure_shows_the_ledgers_counts(study: Workspace) -> None:
    rows = rows_of(study)
    fig = figures.confusion_figure(rows)
    for ax, row in zip(fig.axes, rows, strict=False):
        ledger = read_ledger(Path(row.run_path))
        assert ledger.test is not None
        truth, predicted = np.asarray(ledger.test.labels), ledger.test.predicted()
        shown = [int(text.get_text().split("\n")[0]) for text in ax.texts]
        expected = [int(((truth == i) & (predicted == j)).sum()) for i in (0, 1) for j in (0, 1)]
        assert shown == expected


def test_reliability_figure_plots_each_bins_confidence_and_accuracy(study: Workspace) -> None:
    rows = rows_of(study)
    fig = figures.reliability_figure(rows)
    top = fig.axes[0]
    for row in rows:
        (bars,) = [c for c in top.containers if c.get_label().startswith(f"{row.label} (ECE")]
        line = bars.lines[0]
        expected = breakdown.calibration(read_ledger(Path(row.run_path)))
        assert list(line.get_xdata()) == [b.confidence for b in expected.bins]
        assert list(line.get_ydata()) == [b.accuracy for b in expected.bins]
        assert f"ECE {expected.ece:.3f}, {expected.ece_low:.3f}" in bars.get_label()
        # Each bin's accuracy carries its Wilson interval.
        (caps,) = bars.lines[2]
        segments = caps.get_segments()
        found = [v for seg in segments for v in seg[:, 1]]
        assert found == pytest.approx(
            [v for b in expected.bins for v in (b.accuracy_low, b.accuracy_high)]
        )


def test_length_figure_bars_are_the_bucket_accuracies(study: Workspace) -> None:
    rows = rows_of(study)
    counts = {i: 50 + 9 * i for i in range(N)}  # 50 .. 1121 tokens
    with_lengths = []
    for row in rows:
        ledger = read_ledger(Path(row.run_path))
        buckets = breakdown.length_buckets(ledger, counts)
        errors = Errors(row.errors.confusion, row.errors.calibration, lengths=buckets)
        with_lengths.append(ModelRow(**{**row.__dict__, "errors": errors}))
    fig = figures.lengths_figure(with_lengths)
    (ax,) = fig.axes
    heights = [patch.get_height() for patch in ax.patches]
    expected = [b.accuracy for row in with_lengths for b in row.errors.lengths or []]
    assert heights == expected


def test_plot_writes_each_figure_at_its_size(study: Workspace, tmp_path: Path) -> None:
    target = tmp_path / "figures"
    result = CliRunner().invoke(
        app, ["--workdir", str(study.root), "compare", "bert", "modernbert", "--plot", str(target)]
    )
    assert result.exit_code == 0, result.output
    rows = rows_of(study)
    for name, build in (
        ("learning_curves.png", figures.learning_curves_figure),
        ("confusion_matrices.png", figures.confusion_figure),
        ("reliability.png", figures.reliability_figure),
    ):
        with Image.open(target / name) as image:
            width, height = build(rows).get_size_inches() * plotting.DPI
            assert (image.height, image.width) == (round(height), round(width))
    # Handmade ledgers name no data cache: no length figure, and the reason is printed.
    assert not (target / "accuracy_by_length.png").exists()
    assert "no accuracy by length" in result.output


def test_plot_into_a_file_is_one_red_line(study: Workspace, tmp_path: Path) -> None:
    from cli_support import assert_one_red_line

    target = tmp_path / "taken"
    target.write_text("x")
    result = CliRunner().invoke(
        app, ["--workdir", str(study.root), "compare", "--plot", str(target)]
    )
    assert_one_red_line(result, "--plot", "is a file")
