"""The options of trials run side by side (`imdb sweep`, `imdb reproduce`)."""

from __future__ import annotations

from typing import Annotated

import typer

from imdb_cli.study.workers import PoolOptions

WorkersOption = Annotated[
    int | None,
    typer.Option(
        "--workers",
        help="Train N trials at once on this machine: one per GPU, or the CPU cores shared "
        "out between N processes. The trials are queued in an Optuna study (the study "
        "extra: pip install -e '.[study]' in the checkout); a trial whose worker dies is "
        "resumed by another.",
        show_default=False,
    ),
]
StorageOption = Annotated[
    str | None,
    typer.Option(
        "--storage",
        help="The Optuna storage that queues the trials, to share them with other "
        "machines: a postgresql:// URL, or a journal file on a shared filesystem; run the "
        "same command on each machine. Default: <workdir>/sweeps/studies.journal.",
        show_default=False,
    ),
]
NprocOption = Annotated[
    int,
    typer.Option(
        "--nproc-per-trial",
        help="Processes (GPUs) per trial: each trial is a data-parallel torchrun of K "
        "processes, its settings fixed before torchrun starts.",
    ),
]


def pool_options(
    workers: int | None, storage: str | None, nproc_per_trial: int, use_wandb: bool
) -> PoolOptions | None:
    """None: the trials one after another in this process, without Optuna."""
    if workers is None and storage is None and nproc_per_trial == 1:
        return None
    options = PoolOptions(1 if workers is None else workers, storage, nproc_per_trial, use_wandb)
    options.check()
    return options
