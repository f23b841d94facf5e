"""`imdb train MODEL`: fine-tune one model with its YAML settings, overridable by options."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from imdb_cli import registry
from imdb_cli.commands.common import DatasetOption, dataset_entry, handles_errors, workspace
from imdb_cli.commands.training_options import TrainOverrides, training_options
from imdb_cli.console import out, verbosity
from imdb_cli.data.sources import DataSource
from imdb_cli.runs.ledger import Ledger
from imdb_cli.training.distributed import world_from_env
from imdb_cli.training.loop import train as train_model


@handles_errors
@training_options()
def train(
    model: Annotated[
        str,
        typer.Argument(
            metavar="MODEL",
            help="Model key (see `imdb models`), or the path of a model YAML file.",
            show_default=False,
        ),
    ],
    *,
    overrides: TrainOverrides,
    run_name: Annotated[
        str | None, typer.Option(help="Run id (default: date-time-seed).", show_default=False)
    ] = None,
    resume: Annotated[
        str | None,
        typer.Option(
            help="`auto`: continue the newest unfinished run of MODEL (or start one); "
            "or a run folder to continue.",
            show_default=False,
        ),
    ] = None,
    wandb: Annotated[
        bool,
        typer.Option(
            "--wandb/--no-wandb",
            help="Log to Weights & Biases (default off; $WANDB_PROJECT, default imdb; "
            "WANDB_MODE=offline).",
        ),
    ] = False,
    dataset: DatasetOption = None,
    prepare: Annotated[
        bool,
        typer.Option("--prepare", help="Prepare the data cache first if it is missing."),
    ] = False,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="A local copy of the data set to prepare the cache from if it is missing "
            "(implies --prepare; default: the variable its YAML names, $IMDB_DATA_DIR for "
            "IMDB, else its source).",
            show_default=False,
        ),
    ] = None,
    data_set: Annotated[
        str | None,
        typer.Option(
            "--data",
            help="Prepared data: its fingerprint (the folder name under <workdir>/cache, as "
            "`imdb prepare` prints it) when several are prepared; default: the newest.",
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bars; only the result.")
    ] = False,
) -> None:
    """Fine-tune MODEL on a data set (IMDB unless --dataset): checkpoint every epoch, then
    test the best-validation epoch.

    Defaults come from model_configs/MODEL.yaml (the original study's recipe); each option
    overrides one setting. The run lands in <workdir>/runs/MODEL/<run-id>/.
    """
    if quiet:
        verbosity.quiet = True
    spec = registry.load_spec(model)
    config = spec.training.with_overrides(**overrides)
    given = frozenset(overrides)  # the options given (the YAML decides the others)
    entry = dataset_entry(dataset) if dataset is not None else None
    wants_prepare = prepare or data_dir is not None
    source = DataSource.of(entry or dataset_entry(None), data_dir) if wants_prepare else None
    run = train_model(
        workspace(),
        spec,
        config,
        resume=resume,
        run_name=run_name,
        use_wandb=wandb,
        dataset=entry,
        prepare_source=source,
        data_fingerprint=data_set,
        options=given,
    )
    if world_from_env().main:  # under torchrun, one summary, from the writer
        out.print(summary_line(run.ledger), highlight=False, soft_wrap=True)
        out.print(f"run: {run.path}", highlight=False, soft_wrap=True)


def summary_line(ledger: Ledger) -> str:
    """The study's table row: `bert | best val acc 0.8832 @ epoch 3 | test loss ... | ...`."""
    parts = [ledger.model]
    if ledger.best_epoch is not None and ledger.best_val_acc is not None:
        parts.append(f"best val acc {ledger.best_val_acc:.4f} @ epoch {ledger.best_epoch}")
    if ledger.test is not None:
        parts += [f"test loss {ledger.test.loss:.4f}", f"test acc {ledger.test.acc:.4f}"]
    return " | ".join(parts)
