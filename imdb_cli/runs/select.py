"""Runs on disk: `runs/<model>/<run-id>/`, how to name, list and select them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from imdb_cli import registry
from imdb_cli.config import ENTRY_NAME
from imdb_cli.data.entry import DEFAULT_DATASET
from imdb_cli.errors import ImdbError
from imdb_cli.runs.ledger import LEDGER_NAME, Ledger, read_ledger
from imdb_cli.workspace import Workspace

_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
ENCODER_DIR = "encoder"  # the encoder's config.json and tokenizer, so a run loads offline
CONFIG_NAME = "config.yaml"  # the model entry (weights, architecture) and settings of the run


@dataclass(frozen=True)
class Run:
    path: Path
    ledger: Ledger

    @property
    def model(self) -> str:
        return self.ledger.model

    @property
    def run_id(self) -> str:
        return self.ledger.run_id

    def describe(self) -> str:
        return f"{self.model}/{self.run_id} ({self.ledger.status})"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def check_run_name(name: str) -> str:
    if "/" in name or "\\" in name or not _RUN_NAME.match(name) or name in (".", ".."):
        raise ImdbError(
            f"--run-name {name!r}: use letters, digits, '.', '_' or '-' "
            "(no path separators), at most 100 characters"
        )
    return name


def new_run_id(workspace: Workspace, model_key: str, run_name: str | None, seed: int) -> str:
    if run_name is not None:
        run_id = check_run_name(run_name)
        if (workspace.model_runs(model_key) / run_id).exists():
            raise ImdbError(
                f"--run-name {run_id!r}: run {model_key}/{run_id} already exists "
                "(choose another name or --resume it)"
            )
        return run_id
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_id = f"{stamp}-seed{seed}"
    suffix = 2
    while (workspace.model_runs(model_key) / run_id).exists():
        run_id = f"{stamp}-seed{seed}-{suffix}"
        suffix += 1
    return run_id


def is_run_dir(path: Path) -> bool:
    return (path / LEDGER_NAME).is_file()


def list_runs(workspace: Workspace, model_key: str) -> list[Run]:
    """Every run of a model, oldest first. A damaged ledger is an error naming it: skipping
    it would make a command answer as if the run did not exist."""
    runs = [
        Run(path, read_ledger(path))
        for path in sorted(workspace.model_runs(model_key).glob("*/"))
        if is_run_dir(path)
    ]
    return sorted(runs, key=lambda run: (run.ledger.created_at, run.run_id))


def latest_run(
    workspace: Workspace,
    model_key: str,
    statuses: tuple[str, ...] = ("completed",),
    dataset: str | None = None,
) -> Run | None:
    """The newest run of a model in one of `statuses` (on `dataset` when given)."""
    matching = [
        run
        for run in list_runs(workspace, model_key)
        if run.ledger.status in statuses and dataset in (None, run.ledger.dataset)
    ]
    return matching[-1] if matching else None


def models_with_completed_runs(workspace: Workspace, dataset: str | None = None) -> list[str]:
    """The models (folders under runs/) that have a completed run (on `dataset` when given),
    by name."""
    if not workspace.runs.is_dir():
        return []
    keys = sorted(
        p.name for p in workspace.runs.iterdir() if p.is_dir() and ENTRY_NAME.match(p.name)
    )
    return [key for key in keys if latest_run(workspace, key, dataset=dataset) is not None]


def is_model_key(workspace: Workspace, name: str) -> bool:
    """A model of the registry, or one trained from a YAML given by path (it has runs)."""
    return name in registry.known_model_keys() or (
        ENTRY_NAME.match(name) is not None and workspace.model_runs(name).is_dir()
    )


def resolve_run(workspace: Workspace, model_or_path: str, dataset: str | None = None) -> Run:
    """A run folder path, `model/run-id`, or a model key (its latest completed run, on
    `dataset` when given; a run named by its folder or id is that run, whatever its data)."""
    as_path = Path(model_or_path)
    if as_path.is_dir():
        if not is_run_dir(as_path):
            raise ImdbError(f"{as_path}: not a run folder (no {LEDGER_NAME})")
        return Run(as_path, read_ledger(as_path))
    if "/" in model_or_path:
        candidate = workspace.runs / model_or_path
        if is_run_dir(candidate):
            return Run(candidate, read_ledger(candidate))
        raise ImdbError(f"no run '{model_or_path}' in {workspace.runs}")
    if not is_model_key(workspace, model_or_path):
        known = ", ".join(registry.known_model_keys())
        raise ImdbError(
            f"'{model_or_path}' is neither a run folder nor a known model; known models: {known}"
        )
    run = latest_run(workspace, model_or_path, dataset=dataset)
    if run is None:
        existing = list_runs(workspace, model_or_path)
        if dataset is not None:
            elsewhere = sorted(
                {r.ledger.dataset for r in existing if r.ledger.status == "completed"} - {dataset}
            )
            if elsewhere:
                raise ImdbError(
                    f"model '{model_or_path}' has no completed run on {dataset}; it has on "
                    f"{', '.join(elsewhere)} (add --dataset {elsewhere[0]})"
                )
        listed = ", ".join(r.describe() for r in existing) or "none"
        searched = workspace.model_runs(model_or_path)
        on = f" on {dataset}" if dataset is not None else ""
        flag = f" --dataset {dataset}" if dataset not in (None, DEFAULT_DATASET) else ""
        raise ImdbError(
            f"model '{model_or_path}' has no completed run{on} in {searched} "
            f"(runs: {listed}); make one with `imdb train {model_or_path}{flag}`"
        )
    return run
