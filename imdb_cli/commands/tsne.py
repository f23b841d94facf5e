"""`imdb tsne`: where each model's errors lie in its embedding space."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from imdb_cli.analysis.embeddings import (
    BOUNDARY_CSV,
    ReviewRow,
    TsneOptions,
    TsneResult,
    compute_tsne,
    excerpt,
)
from imdb_cli.commands.common import (
    RunsDatasetOption,
    chosen_run,
    compact_table,
    handles_errors,
    runs_dataset,
    workspace,
)
from imdb_cli.config import Invocation
from imdb_cli.console import out
from imdb_cli.data.entry import DEFAULT_DATASET
from imdb_cli.runs.run import Run

SHOWN = 5  # rows of each list printed; the files have them all


@handles_errors
def tsne(
    models: Annotated[
        list[str],
        typer.Argument(
            metavar="MODEL|RUN",
            help="Model keys (each: the run its latest sweep selected, else its latest "
            "completed run), model/run-id, or run folders.",
            show_default=False,
        ),
    ],
    split: Annotated[str, typer.Option("--split", help="Split to sample: val or test.")] = "test",
    n_samples: Annotated[
        int, typer.Option("--n-samples", help="Reviews sampled (seeded) from the split.")
    ] = 1000,
    perplexity: Annotated[
        float | None,
        typer.Option(
            "--perplexity",
            help="t-SNE perplexity. Default: 30, or (samples - 1) / 3 when fewer than 91 "
            "reviews are sampled.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the sample and of t-SNE.")] = 42,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Reviews per forward pass.")] = 64,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    dataset: RunsDatasetOption = None,
) -> None:
    """t-SNE of each model's pooled embeddings, with boundary samples and disagreements.

    Writes one PNG per model, a side-by-side PNG, boundary_samples.csv/.json (every sampled
    review, smallest margin first: the top class's probability minus the second's) and
    disagreements.csv under
    <workdir>/analysis/tsne/<timestamp>/ (also reachable as analysis/tsne/latest).
    """
    space = workspace()
    options = TsneOptions(
        split=split,
        n_samples=n_samples,
        perplexity=perplexity,
        seed=seed,
        batch_size=batch_size,
        device=device,
    )
    options.check()
    on = runs_dataset(dataset)
    runs = [chosen_run(space, model, on) for model in models]
    result = compute_tsne(space, runs, options)
    render(result)


def _epoch(run: Run, checkpoint: Path) -> str:
    """The epoch whose weights `checkpoint` holds, from the run's ledger."""
    for record in run.ledger.epochs:
        if (run.path / record.checkpoint).resolve() == checkpoint.resolve():
            return str(record.epoch)
    return checkpoint.name


def _predictions(row: ReviewRow, names: list[str]) -> list[str]:
    """Each model's predicted class and its probability; a red ✗ when it is wrong."""
    cells = []
    for name in names:
        guess = row.predicted[name]
        mark = "" if row.correct[name] else " [red]✗[/red]"
        cells.append(f"{row.classes[guess]} {float(row.probs[name][guess]):.2f}{mark}")
    return cells


def _review_table(title: str, rows: list[ReviewRow], names: list[str]) -> Table:
    """Review, label, each model's prediction and an excerpt that wraps, so that the
    table fits 80 columns with two models (a wider terminal shows more per line)."""
    table = compact_table(title)
    table.add_column("review", no_wrap=True)
    table.add_column("label", no_wrap=True)
    for name in names:
        table.add_column(name, justify="right", no_wrap=True, min_width=len(name))
    table.add_column("excerpt", ratio=1, min_width=24, overflow="fold")
    for row in rows[:SHOWN]:
        label = row.classes[row.label]
        table.add_row(f"#{row.review_id}", label, *_predictions(row, names), excerpt(row.text, 80))
    return table


def render(result: TsneResult) -> None:
    names = [view.name for view in result.views]
    sample = result.sample
    summary = compact_table(
        f"{len(sample.review_ids)} {sample.split} reviews (seed {result.options.seed})"
    )
    for column in ("model", "run", "epoch", "accuracy", "errors"):
        summary.add_column(column, justify="left" if column in ("model", "run") else "right")
    for view in result.views:
        errors = int((view.predictions != sample.labels).sum())
        summary.add_row(
            view.name,
            view.run.run_id,
            _epoch(view.run, view.checkpoint),
            f"{result.accuracy(view):.1%}",
            str(errors),
        )
    out.print(summary)
    out.print(
        "Under each model: its predicted class and that class's probability; ✗ marks a wrong "
        "prediction.",
        highlight=False,
    )
    out.print(
        _review_table(
            "boundary samples (smallest margin: top class's probability minus the second's)",
            result.boundary,
            names,
        )
    )
    for name, rows in result.confident_errors.items():
        if rows:
            out.print(_review_table(f"most confident errors of {name}", rows, names))
        else:
            out.print(f"{name} made no errors on this sample")
    if len(names) > 1:
        if result.disagreements:
            title = f"disagreements ({len(result.disagreements)}; largest probability spread first)"
            out.print(_review_table(title, result.disagreements, names))
        else:
            out.print("the models agree on every sampled review")
    out.print(f"files in {result.out_dir}:")
    for path in result.files:
        out.print(f"  {path.name}")
    keys = ",".join(dict.fromkeys(view.run.model for view in result.views))
    attention = Invocation("attention", options=(("from_errors", 3), ("models", keys)))
    if result.dataset != DEFAULT_DATASET:  # the same runs: a key means its runs on a data set
        attention = attention.with_options(("dataset", result.dataset))
    out.print(f"next: {attention}", highlight=False)
    out.print(f"      (reads {BOUNDARY_CSV} of the latest t-SNE)", highlight=False)
