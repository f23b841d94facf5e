"""`imdb reproduce`: the whole study in one command, ending with report.md."""

from __future__ import annotations

from typing import Annotated

import typer

from imdb_cli import registry
from imdb_cli.commands.common import (
    DataDirOption,
    DatasetOption,
    dataset_entry,
    handles_errors,
    workspace,
)
from imdb_cli.commands.study_options import (
    NprocOption,
    StorageOption,
    WorkersOption,
    pool_options,
)
from imdb_cli.commands.training_options import TrainOverrides, training_options
from imdb_cli.compare import formats
from imdb_cli.console import out
from imdb_cli.data.entry import load_dataset_entry
from imdb_cli.errors import ImdbError
from imdb_cli.runs.sweeps import parse_rates
from imdb_cli.study.reproduce import (
    ATTENTION_REVIEWS,
    DEFAULT_MODELS,
    TSNE_SAMPLES,
    StudyOptions,
    parse_seeds,
    run_study,
)


@handles_errors
@training_options("reproduce")
def reproduce(
    models: Annotated[
        str, typer.Option("--models", help="Comma-separated model keys (see `imdb models`).")
    ] = DEFAULT_MODELS,
    dataset: DatasetOption = None,
    data_dir: DataDirOption = None,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit", help="A seeded sample of N reviews (then split as the data set says)."
        ),
    ] = None,
    split_seed: Annotated[
        int | None,
        typer.Option(
            "--split-seed",
            help="Seed of the --limit sample and the split. Default: the data set's (42 for IMDB).",
            show_default=False,
        ),
    ] = None,
    seeds: Annotated[
        str | None,
        typer.Option(
            "--seeds",
            help="Training seeds, e.g. 42,43,44: one run per seed and model. With two or more, "
            "the verdict compares the encoders across seeds (with one, two checkpoints; the "
            "report says how many seeds a one-point difference needs). "
            "Default: each model's YAML seed.",
            show_default=False,
        ),
    ] = None,
    lr: Annotated[
        str | None,
        typer.Option(
            "--lr",
            help="Learning rates to sweep per model, like 2e-5,3e-5,5e-5,8e-5: each model "
            "is trained at every rate (and seed) and compared at the rate with its best "
            "validation accuracy (`imdb sweep`). Default: each model's YAML rate.",
            show_default=False,
        ),
    ] = None,
    *,
    overrides: TrainOverrides,
    tsne_samples: Annotated[
        int, typer.Option("--tsne-samples", help="Test reviews in the t-SNE (at most).")
    ] = TSNE_SAMPLES,
    attention_reviews: Annotated[
        int,
        typer.Option("--attention-reviews", help="Boundary reviews whose attention is drawn."),
    ] = ATTENTION_REVIEWS,
    analysis: Annotated[
        bool, typer.Option("--analysis/--no-analysis", help="Run t-SNE and attention (default on).")
    ] = True,
    workers: WorkersOption = None,
    storage: StorageOption = None,
    nproc_per_trial: NprocOption = 1,
) -> None:
    """Run the whole study: prepare, train each model, compare, t-SNE, attention, report.md
    and report.html.

    With --workers N the trainings run N at once (one per GPU), queued in an Optuna
    study that other machines can share (--storage); see `imdb sweep --help`.

    Example (the demo of `nox -s demo`, offline; the README says how long it takes):
    imdb reproduce --models minilm,tiny-modernbert --limit 3000 --data-dir ../shared/data/imdb
    """
    options = StudyOptions(
        models=tuple(registry.parse_model_list(models)),
        data_dir=data_dir,
        dataset=None if dataset is None else _dataset_key(dataset),
        limit=limit,
        split_seed=split_seed,
        seeds=parse_seeds(seeds),
        rates=parse_rates(lr) if lr is not None else None,
        overrides=overrides,
        tsne_samples=tsne_samples,
        attention_reviews=attention_reviews,
        analysis=analysis,
        pool=pool_options(workers, storage, nproc_per_trial, use_wandb=False),
    )
    result = run_study(workspace(), options)
    comparison = result.report.comparison
    if comparison is not None:
        formats.print_comparison(out, comparison, skip_not_comparable=False)
    # Whole paths on their lines, so that they can be copied.
    out.print(f"report: {result.path}", highlight=False, soft_wrap=True)
    if result.report.page is not None:
        out.print(f"page:   {result.report.page}", highlight=False, soft_wrap=True)
    if not result.complete:
        failures = "; ".join(result.report.failures)
        raise ImdbError(f"the study is incomplete ({failures}); see {result.path}")


def _dataset_key(option: str) -> str:
    """--dataset as the study records it: as given, or the YAML a name prepared in this
    workspace was read from."""
    try:
        load_dataset_entry(option)
    except ImdbError:
        return str(dataset_entry(option).path)
    return option
