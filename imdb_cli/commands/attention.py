"""`imdb attention`: what each model looks at in a review."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from imdb_cli.analysis.attention import (
    LayerSelection,
    ReviewInput,
    SavedAttention,
    explain,
    review_from_file,
    review_from_text,
)
from imdb_cli.analysis.embeddings import check_sampled_from, reviews_from_errors
from imdb_cli.commands.common import (
    RunsDatasetOption,
    chosen_run,
    compact_table,
    handles_errors,
    runs_dataset,
    workspace,
)
from imdb_cli.console import info, out
from imdb_cli.errors import ImdbError
from imdb_cli.runs.select import models_with_completed_runs
from imdb_cli.workspace import Workspace


def _reviews(
    space: Workspace, review: str | None, review_file: Path | None, from_errors: int | None
) -> tuple[list[ReviewInput], Path | None]:
    """The reviews to explain, and the t-SNE's boundary_samples.csv they came from (None
    unless --from-errors)."""
    given = [
        flag
        for flag, value in (
            ("--review", review),
            ("--review-file", review_file),
            ("--from-errors", from_errors),
        )
        if value is not None
    ]
    if len(given) != 1:
        raise ImdbError(
            "give exactly one of --review TEXT, --review-file PATH or --from-errors N"
            + (f" (got {' and '.join(given)})" if given else "")
        )
    if review is not None:
        return [review_from_text(review)], None
    if review_file is not None:
        return [review_from_file(review_file)], None
    assert from_errors is not None
    path, listed = reviews_from_errors(space, from_errors)
    info(f"{len(listed)} review(s) from {path}")
    reviews = [
        ReviewInput(text=r.text, name=f"review-{r.review_id}", review_id=r.review_id, label=r.label)
        for r in listed
    ]
    return reviews, path


@handles_errors
def attention(
    review: Annotated[
        str | None, typer.Option("--review", help="The review's text.", show_default=False)
    ] = None,
    review_file: Annotated[
        Path | None,
        typer.Option(
            "--review-file", help="A UTF-8 text file holding one review.", show_default=False
        ),
    ] = None,
    from_errors: Annotated[
        int | None,
        typer.Option(
            "--from-errors",
            help="N reviews of the latest `imdb tsne` boundary_samples.csv "
            "(disagreements first, then the smallest margins).",
            show_default=False,
        ),
    ] = None,
    models: Annotated[
        str | None,
        typer.Option(
            "--models",
            help="Comma-separated model keys (the run a sweep selected, else the latest "
            "completed run), model/run-id or run "
            "folders. Default: every model with a completed run in the workspace.",
            show_default=False,
        ),
    ] = None,
    layer: Annotated[
        str, typer.Option("--layer", help="last, all, or a layer number (from 0).")
    ] = "last",
    head: Annotated[
        str, typer.Option("--head", help="mean (over heads) or a head number (from 0).")
    ] = "mean",
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    dataset: RunsDatasetOption = None,
) -> None:
    """Attention maps of each model on a review: heatmap, attention received, JSON.

    Uses an eager-attention copy of each run's best checkpoint (fast kernels return no
    maps). Files go under <workdir>/analysis/attention/<timestamp>/<review>/.
    """
    space = workspace()
    selection = LayerSelection.parse(layer, head)
    reviews, sampled = _reviews(space, review, review_file, from_errors)
    on = runs_dataset(dataset)
    runs = [chosen_run(space, name, on) for name in _model_names(space, models, on)]
    if sampled is not None:
        check_sampled_from(sampled, runs)
    out_dir, saved = explain(space, runs, reviews, selection, device)
    render(out_dir, saved)


def _model_names(space: Workspace, models: str | None, dataset: str) -> list[str]:
    if models is None:
        found = models_with_completed_runs(space, dataset)
        if not found:
            raise ImdbError(
                f"no completed runs in {space.runs} on {dataset}; make one with `imdb train "
                "MODEL`, or name runs with --models"
            )
        info(f"models with a completed run: {', '.join(found)}")
        return found
    names = [name.strip() for name in models.split(",") if name.strip()]
    if not names:
        raise ImdbError("--models: give at least one model key, like bert,modernbert")
    return list(dict.fromkeys(names))


def render(out_dir: Path, saved: list[SavedAttention]) -> None:
    """Per review, a table of the figures, then one of each model's top tokens: as a column
    beside the figures they would get some 20 of 80 columns, three lines a model."""
    by_review: dict[str, list[SavedAttention]] = {}
    for item in saved:
        by_review.setdefault(item.review.name, []).append(item)
    for name, items in by_review.items():
        out.print(
            f"{name}: each model's prediction, the share of its attention on special tokens, "
            "and the tokens it attends to most (special tokens left out)",
            highlight=False,
        )
        out.print(_review_table(items))
        out.print(_top_tokens_table(items))
    out.print(f"files in {out_dir}:")
    for item in saved:
        for path in item.files:
            out.print(f"  {path.relative_to(out_dir)}", highlight=False)


def _review_table(items: list[SavedAttention]) -> Table:
    table = compact_table("")
    table.add_column("model", no_wrap=True)
    table.add_column("prediction", no_wrap=True)
    table.add_column("P", justify="right", no_wrap=True)  # of the predicted class
    table.add_column("tokens", no_wrap=True)
    table.add_column("special", justify="right", no_wrap=True)
    for item in items:
        result = item.result
        label = result.classes[result.predicted]
        if item.review.label is not None:
            right = result.predicted == item.review.label
            label += " [green]✓[/green]" if right else " [red]✗[/red]"
        tokens = str(len(result.review.tokens))
        if result.review.cut_tokens:
            tokens += f" ({result.review.cut_tokens} cut)"
        table.add_row(
            item.label,
            label,
            f"{float(result.probs[result.predicted]):.3f}",
            tokens,
            f"{result.special_mass:.1%}",  # the mass the top tokens leave out
        )
    return table


def _top_tokens_table(items: list[SavedAttention]) -> Table:
    table = compact_table("")
    table.add_column("model", no_wrap=True)
    table.add_column("top tokens")
    for item in items:
        result = item.result
        # Distinct tokens: "and" at three positions is one finding, not three.
        distinct = dict.fromkeys(t["token"] for t in result.top_tokens(20, with_special=False))
        # Spaces between tokens, not commas: "," and "." are tokens too.
        shown = "  ".join(list(distinct)[:5])
        top = shown if not result.near_uniform else "none (near-uniform)"
        table.add_row(item.label, top)
    return table
