"""`imdb tsne`: where each model's errors lie in its embedding space."""

from __future__ import annotations

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
from imdb_cli.commands.common import handles_errors, workspace
from imdb_cli.console import out
from imdb_cli.runs import resolve_run

SHOWN = 5  # rows of each list printed; the files have them all


@handles_errors
def tsne(
    models: Annotated[
        list[str],
        typer.Argument(
            help="Model keys (each uses its latest completed run), model/run-id, or run folders.",
            show_default=False,
        ),
    ],
    split: Annotated[str, typer.Option("--split", help="Split to sample: val or test.")] = "test",
    n_samples: Annotated[
        int, typer.Option("--n-samples", help="Reviews sampled (seeded) from the split.")
    ] = 1000,
    perplexity: Annotated[float, typer.Option("--perplexity", help="t-SNE perplexity.")] = 30.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the sample and of t-SNE.")] = 42,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Reviews per forward pass.")] = 64,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
) -> None:
    """t-SNE of each model's pooled embeddings, with boundary samples and disagreements.

    Writes one PNG per model, a side-by-side PNG, boundary_samples.csv/.json (every sampled
    review, smallest margin |p - 0.5| first) and disagreements.csv under
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
    runs = [resolve_run(space, model) for model in models]
    result = compute_tsne(space, runs, options)
    render(result)


def _probs(row: ReviewRow, names: list[str]) -> list[str]:
    cells = []
    for name in names:
        mark = "" if row.correct[name] else " [red]✗[/red]"
        cells.append(f"{row.probs[name]:.3f}{mark}")
    return cells


def _review_table(title: str, rows: list[ReviewRow], names: list[str]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("review", no_wrap=True)
    table.add_column("label", no_wrap=True)
    for name in names:
        table.add_column(f"P(pos) {name}", justify="right", no_wrap=True)
    table.add_column("excerpt", overflow="ellipsis", no_wrap=True, min_width=20)
    for row in rows[:SHOWN]:
        label = "pos" if row.label else "neg"
        table.add_row(f"#{row.review_id}", label, *_probs(row, names), excerpt(row.text, 80))
    return table


def render(result: TsneResult) -> None:
    names = [view.name for view in result.views]
    sample = result.sample
    summary = Table(
        title=f"{len(sample.review_ids)} {sample.split} reviews (seed {result.options.seed})",
        title_justify="left",
    )
    for column in ("model", "run", "accuracy", "errors", "checkpoint"):
        summary.add_column(column, justify="right" if column in ("accuracy", "errors") else "left")
    for view in result.views:
        errors = int((view.predictions != sample.labels).sum())
        summary.add_row(
            view.name,
            view.run.run_id,
            f"{result.accuracy(view):.1%}",
            str(errors),
            view.checkpoint.name,
        )
    out.print(summary)
    out.print(_review_table("boundary samples (smallest |p - 0.5|)", result.boundary, names))
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
    out.print(
        f"next: imdb attention --from-errors 3 --models {keys}  "
        f"(reads {BOUNDARY_CSV} of the latest t-SNE)",
        highlight=False,
    )
