"""`imdb evaluate MODEL|RUN`: loss and accuracy of any checkpoint on the run's own data."""

from __future__ import annotations

from typing import Annotated

import typer

from imdb_cli.commands.common import (
    RunsDatasetOption,
    chosen_run,
    handles_errors,
    runs_dataset,
    workspace,
)
from imdb_cli.console import out, verbosity
from imdb_cli.runs.checkpoints import checkpoint_path
from imdb_cli.training.inference import evaluate as evaluate_run


@handles_errors
def evaluate(
    run: Annotated[
        str,
        typer.Argument(
            metavar="MODEL|RUN",
            help="A model key (the run its latest sweep selected, else its latest completed "
            "run), MODEL/RUN-ID, or a run folder.",
        ),
    ],
    checkpoint: Annotated[
        str,
        typer.Option(help="best (best validation epoch), last, or a checkpoint file."),
    ] = "best",
    split: Annotated[str, typer.Option(help="val or test (or train).")] = "test",
    batch_size: Annotated[
        int | None,
        typer.Option(help="Reviews per batch (default: the run's eval batch size)."),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    dataset: RunsDatasetOption = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bars; only the result.")
    ] = False,
) -> None:
    """Evaluate a run's checkpoint on a split of the data cache it was trained on."""
    if quiet:
        verbosity.quiet = True
    chosen = chosen_run(workspace(), run, runs_dataset(dataset))
    path = checkpoint_path(chosen, checkpoint)
    result = evaluate_run(
        workspace(), chosen, checkpoint=str(path), split=split, batch_size=batch_size, device=device
    )
    # Two lines, as a run id and a checkpoint name leave no room for the figures at 80
    # columns; the figures' line is the same for every run, for scripts to read.
    out.print(f"{chosen.model}/{chosen.run_id}: {path.name}", highlight=False, soft_wrap=True)
    out.print(
        f"{split} loss {result.loss:.4f} | {split} acc {result.acc:.4f} | {result.samples} reviews",
        highlight=False,
        soft_wrap=True,
    )
