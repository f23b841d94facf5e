"""Running a learning-rate sweep: one ordinary run per (rate, seed), the rate chosen on
validation (the plan, the record and the selection: runs/sweeps.py).

    imdb sweep bert --lr 2e-5,3e-5,5e-5 --seeds 42,43

The same command again resumes a sweep: finished trials are not run again, a killed or
interrupted trial continues as `imdb train --resume` does, a failed one (a diverged rate)
stays failed and is reported.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from imdb_cli.config import Invocation, ModelSpec, TrainConfig, train_invocation
from imdb_cli.console import info, warn
from imdb_cli.errors import ImdbError
from imdb_cli.runs.ledger import LEDGER_NAME
from imdb_cli.runs.run import Run
from imdb_cli.runs.sweeps import (
    SearchPlan,
    SweepPlan,
    SweepRecord,
    Trial,
    TrialResult,
    created_at,
    format_rate,
    read_record,
    record_path,
    trial_result,
    write_record,
)
from imdb_cli.workspace import Workspace

if TYPE_CHECKING:  # compare reads sweeps without loading the data layer
    from imdb_cli.data.tokenized import TokenizedCache

# --------------------------------------------------------------------------- running


TrainTrial = Callable[[Trial, str | Path | None], Run]  # (trial, resume) -> run


def clear_unstarted(path: Path) -> None:
    """A trial folder without a ledger, checkpoints or a live trainer died before its
    first record; remove it at once so the trial can start under its name (training's
    own tidying waits a minute before it removes such a folder)."""
    from imdb_cli.runs.lock import is_locked  # torch: only when training

    if not path.is_dir() or (path / LEDGER_NAME).exists() or is_locked(path):
        return
    if any((path / "checkpoints").glob("*")):
        raise ImdbError(
            f"{path}: trial folder with checkpoints but no ledger; move it away to rerun it"
        )
    shutil.rmtree(path)


def plan_only(workspace: Workspace, spec: ModelSpec, plan: SweepPlan) -> SweepRecord:
    """Write the record (trials and their commands, as they stand) and train nothing."""
    trials = plan.trials()
    states = [trial_result(workspace, plan.model, t.run_name, t.lr, t.seed) for t in trials]
    commands = {t.run_name: str(trial_invocation(workspace, spec, plan, t)) for t in trials}
    path = write_record(workspace, plan, states, commands, created_at(record_path(workspace, plan)))
    return read_record(workspace, path)


def run_sweep(
    workspace: Workspace,
    spec: ModelSpec,
    plan: SweepPlan,
    train_trial: TrainTrial,
    command_of: Callable[[Trial], Invocation],
) -> SweepRecord:
    """Every trial not finished yet, one after another; the record after each."""
    trials = plan.trials()
    commands = {t.run_name: str(command_of(t)) for t in trials}
    created = created_at(record_path(workspace, plan))

    def state() -> list[TrialResult]:
        return [trial_result(workspace, plan.model, t.run_name, t.lr, t.seed) for t in trials]

    write_record(workspace, plan, state(), commands, created)
    for number, trial in enumerate(trials, start=1):
        now = trial_result(workspace, plan.model, trial.run_name, trial.lr, trial.seed)
        where = f"trial {number}/{len(trials)} (lr {format_rate(trial.lr)}, seed {trial.seed})"
        if now.status == "completed":
            info(f"{where}: done before, val acc {now.best_val_acc:.4f}; not run again")
            continue
        if now.status == "failed":
            warn(
                f"{where}: failed before ({now.error}); not run again (remove its run "
                "folder to retry)"
            )
            continue
        path = workspace.model_runs(plan.model) / trial.run_name
        resume: Path | None = path if now.status in ("running", "interrupted") else None
        if resume is None:
            clear_unstarted(path)
        info(f"{where}{': resuming' if resume else ''}\n  {commands[trial.run_name]}")
        try:
            train_trial(trial, resume)
        except ImdbError as exc:
            warn(f"{where} failed: {exc.message}")
        finally:
            write_record(workspace, plan, state(), commands, created)
    return read_record(workspace, record_path(workspace, plan))


def trial_invocation(
    workspace: Workspace, spec: ModelSpec, plan: SweepPlan, trial: Trial
) -> Invocation:
    """The `imdb train` command that runs `trial` anywhere: its settings, its run name (so
    the sweep and compare find it) and the sweep's data. The trial's rate and seed are
    always written out, also when they are the YAML's, so that each command says which
    trial it is."""
    invocation = train_invocation(spec, trial.config, workspace.root)
    named = {name for name, _ in invocation.options}
    always = [(n, getattr(trial.config, n)) for n in ("lr", "seed") if n not in named]
    return invocation.with_options(
        *always, ("run_name", trial.run_name), ("data_set", plan.data_fingerprint)
    )


def make_plan(
    workspace: Workspace,
    spec: ModelSpec,
    base: TrainConfig,
    rates: Sequence[float],
    seeds: Sequence[int],
    data_fingerprint: str | None = None,
    dataset: str | None = None,
) -> SweepPlan:
    """The plan, its data pinned: the newest cache of `dataset` (IMDB when None) for the
    model's tokenizer and length (or the `--data` one), so that every trial, wherever it
    runs, trains on it."""
    from imdb_cli import registry
    from imdb_cli.data.locate import data_set_asked, find_tokenized_cache

    if not seeds:
        raise ImdbError("--seeds: give at least one seed, like 42,43")
    if len(set(seeds)) != len(seeds):
        raise ImdbError(f"--seeds: a seed is repeated ({','.join(map(str, seeds))})")
    cache = find_tokenized_cache(
        workspace,
        registry.build_tokenizer(spec),
        base.max_length,
        base.truncation,
        model=spec.key,
        fingerprint=data_fingerprint,
        dataset=data_set_asked(dataset, data_fingerprint),
    )
    return SweepPlan(spec.key, tuple(sorted(rates)), tuple(seeds), base, cache.data_fingerprint)


def train_trial(
    workspace: Workspace,
    spec: ModelSpec,
    plan: SweepPlan | SearchPlan,
    trial: Trial,
    resume: str | Path | None,
    *,
    use_wandb: bool = False,
    cache: TokenizedCache | None = None,
) -> Run:
    """Train one trial here: a new run under its name, or its folder `resume`d, on the
    plan's data (`cache`: that data already loaded, for a new run)."""
    from imdb_cli.training.loop import train  # torch: only when training

    return train(
        workspace,
        spec,
        trial.config,
        resume=resume,
        run_name=None if resume is not None else trial.run_name,
        use_wandb=use_wandb,
        cache=cache if resume is None else None,
        data_fingerprint=plan.data_fingerprint,
    )


def train_sweep(
    workspace: Workspace,
    spec: ModelSpec,
    plan: SweepPlan,
    *,
    use_wandb: bool = False,
    cache: TokenizedCache | None = None,
) -> SweepRecord:
    """`run_sweep` with each trial trained here, one after another (`cache`: the prepared
    data to pin, as `imdb reproduce` does; else the plan's data set)."""

    def train_one(trial: Trial, resume: str | Path | None) -> Run:
        return train_trial(workspace, spec, plan, trial, resume, use_wandb=use_wandb, cache=cache)

    def command_of(trial: Trial) -> Invocation:
        return trial_invocation(workspace, spec, plan, trial)

    return run_sweep(workspace, spec, plan, train_one, command_of)
