"""Choosing and resuming a run: which run `--resume` means, the settings it continues
with, and its ledger cut back to the last epoch whose checkpoint is complete."""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path

from imdb_cli.config import ModelSpec, TrainConfig, flag_name
from imdb_cli.console import info, warn
from imdb_cli.errors import ImdbError
from imdb_cli.runs.checkpoints import in_run, state_path
from imdb_cli.runs.ledger import LEDGER_NAME, EnvironmentRecord, read_ledger
from imdb_cli.runs.run import Run, is_run_dir, list_runs
from imdb_cli.workspace import Workspace

RESUMABLE = ("running", "failed", "interrupted")


def run_to_resume(
    workspace: Workspace, spec: ModelSpec, resume: str | Path | None, dataset: str
) -> Run | None:
    """`auto`: the newest unfinished run of the model on `dataset` (None: start fresh); else
    that run, whatever its data set.

    A run that another process is training is not skipped: taking its lock (runs/lock.py)
    stops this process with a line naming the other, rather than training a new run.
    """
    if resume is None:
        return None
    if str(resume) == "auto":
        unfinished = [
            run for run in list_runs(workspace, spec.key) if run.ledger.status in RESUMABLE
        ]
        mine = [run for run in unfinished if run.ledger.dataset == dataset]
        if not mine:
            elsewhere = sorted({run.ledger.dataset for run in unfinished})
            also = f" (unfinished on {', '.join(elsewhere)}: give --dataset)" if elsewhere else ""
            info(
                f"--resume auto: no unfinished run of {spec.key} on {dataset}{also}; "
                "starting a new run"
            )
            return None
        return mine[-1]
    path = Path(resume)
    if not path.exists() and (workspace.model_runs(spec.key) / str(resume)).exists():
        path = workspace.model_runs(spec.key) / str(resume)
    if not path.exists():
        raise ImdbError(f"--resume {resume}: no such run folder")
    if not is_run_dir(path):
        raise ImdbError(f"--resume {resume}: not a run folder (no {LEDGER_NAME})")
    run = Run(path, read_ledger(path))
    if run.model != spec.key:
        raise ImdbError(
            f"--resume {resume}: that run belongs to model '{run.model}', not '{spec.key}'"
        )
    if run.ledger.status == "completed":
        raise ImdbError(
            f"--resume {resume}: run {run.describe()} is already complete; "
            "train again without --resume"
        )
    return run


def resumed_config(
    spec: ModelSpec,
    given: TrainConfig,
    run: Run,
    run_name: str | None = None,
    options: frozenset[str] | None = None,
) -> TrainConfig:
    """The run's own config. `options`: the settings the user gave on the command line; one
    that differs from the run's is refused, naming it (resuming cannot change a recipe
    half-way). Without `options` (a library call), settings that differ from both the YAML
    and the run are reported and ignored. The device is where the run continues, not part
    of its recipe, so it follows the options.
    """
    saved = run.ledger.config
    differing = [
        f.name
        for f in fields(TrainConfig)
        if f.name != "device"
        and getattr(given, f.name) != getattr(saved, f.name)
        and (
            f.name in options
            if options is not None
            else getattr(given, f.name) != getattr(spec.training, f.name)
        )
    ]
    described = [
        f"{flag_name(name)} {getattr(given, name)} (run has {getattr(saved, name)})"
        for name in differing
    ]
    if differing and options is not None:
        raise ImdbError(
            f"--resume: run {run.describe()} was trained with other settings: "
            f"{'; '.join(described)}; resume without {flag_name(differing[0])} (or start "
            "a new run)"
        )
    if described:
        warn(f"resuming {run.describe()} with its saved settings; ignoring {'; '.join(described)}")
    if run_name is not None and run_name != run.run_id:
        warn(f"--run-name {run_name} ignored: resuming run {run.run_id}")
    return replace(saved, device=given.device)


def last_complete_epoch(run: Run) -> int:
    """The newest epoch whose weights and training state are both on disk."""
    for record in reversed(run.ledger.epochs):
        weights = in_run(run.path, record.checkpoint)
        if weights.is_file() and state_path(run.path, record.epoch).is_file():
            return record.epoch
        warn(f"epoch {record.epoch} of {run.describe()} has no complete checkpoint; redoing it")
    return 0


def reopen(run: Run, environment: EnvironmentRecord) -> int:
    """Mark the run running again from its last complete epoch; the first epoch to train.

    Epochs after that one are dropped from the ledger (and the best epoch with them), as is
    the test result: the run trains them again.
    """
    ledger = run.ledger
    done = last_complete_epoch(run)
    ledger.epochs = [e for e in ledger.epochs if e.epoch <= done]
    if ledger.best_epoch is not None and ledger.best_epoch > done:
        best = max(ledger.epochs, key=lambda e: e.val_acc, default=None)
        ledger.best_epoch = best.epoch if best else None
        ledger.best_val_acc = best.val_acc if best else None
    ledger.status, ledger.error, ledger.environment = "running", None, environment
    ledger.test = None
    return done + 1
