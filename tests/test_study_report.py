"""report.md says what is compared and carries the curves, errors and intervals."""

from __future__ import annotations

from pathlib import Path

from handmade_ledgers import write_run

from imdb_cli.compare import study_report
from imdb_cli.compare.comparison import compare_runs
from imdb_cli.compare.figures import write_figures
from imdb_cli.runs.run import list_runs
from imdb_cli.workspace import Workspace

N = 200
LABELS = [i % 2 for i in range(N)]


def demo_study(root: Path) -> study_report.StudyReport:
    """The demo's pair as ledgers: pretrained minilm vs random-init tiny-modernbert."""
    workspace = Workspace(root)
    write_run(
        workspace,
        "minilm",
        "r1",
        labels=LABELS,
        right=[True] * 175 + [False] * 25,
        config={"optimizer": "adamw", "lr": 1e-4, "scheduler": "linear", "warmup_ratio": 0.1},
        environment={"cpu_count": 2, "load_average_start": 2.5, "load_average_end": 3.4},
    )
    write_run(
        workspace,
        "tiny-modernbert",
        "r2",
        labels=LABELS,
        right=[True] * 140 + [False] * 60,
        parameters=2_000_000,
        config={"optimizer": "adamw", "lr": 1e-3, "scheduler": "constant"},
    )
    runs = list_runs(workspace, "minilm") + list_runs(workspace, "tiny-modernbert")
    study = study_report.StudyReport(
        root, "imdb reproduce ...", "now", {}, ["minilm", "tiny-modernbert"]
    )
    study.comparison = compare_runs(runs)
    study.figures = write_figures(study.comparison, root / "report-figures")
    return study


def test_the_demo_report_warns_and_carries_every_figure(tmp_path: Path) -> None:
    study = demo_study(tmp_path)
    text = study_report.render_study_report(study)
    assert study.comparison is not None
    for warning in study.comparison.warnings:
        assert f"Not like for like: {warning}." in text
    joined = " ".join(study.comparison.warnings)
    assert "pretrained vs random init" in joined
    assert "different recipes" in joined and "--lr 0.0001 vs 0.001" in joined
    assert "one seed" in joined
    assert "speed of minilm measured on a loaded machine" in joined
    for heading in (
        "### What is compared",
        "### The latest runs, checkpoint by checkpoint",
        "### Learning curves",
        "#### Per class",
        "#### Confusion matrices",
        "#### Calibration",
        "#### Accuracy by review length",
    ):
        assert heading in text
    # The verdict comes first, says what one seed each compares, and that a pretrained
    # model against a random-init toy says nothing about encoders.
    assert text.index("## Verdict") < text.index("## Command") < text.index("## Results")
    verdict_part = text[text.index("## Verdict") : text.index("## Command")]
    assert "compares two checkpoints, not two encoders (one seed each; pretrained" in verdict_part
    assert "(random init) says nothing about the encoders" in verdict_part
    assert "beats" not in text
    (pair,) = study.comparison.pairs
    boot = pair.bootstrap
    assert f"| {boot.difference:+.4f} | {boot.low:+.4f} to {boot.high:+.4f} |" in text
    for name in ("learning_curves", "confusion_matrices", "reliability"):
        assert f"(report-figures/{name}.png)" in text
        assert (tmp_path / "report-figures" / f"{name}.png").is_file()
    # The confusion counts in the report are the ledger's predictions.
    ledger = list_runs(Workspace(tmp_path), "minilm")[0].ledger
    assert ledger.test is not None
    pairs = list(zip(ledger.test.labels, ledger.test.predicted().tolist(), strict=True))
    minilm = [[pairs.count((t, p)) for p in (0, 1)] for t in (0, 1)]
    assert f"| negative | {minilm[0][0]} | {minilm[0][1]} |" in text
    assert f"| positive | {minilm[1][0]} | {minilm[1][1]} |" in text
