"""Which run a name means, for every command alike: a run folder, `MODEL/RUN-ID`, or a
model key, which means the run its latest sweep selected, else its latest completed run,
on the data set asked for."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from imdb_cli import registry
from imdb_cli.config import ENTRY_NAME, Invocation
from imdb_cli.data.entry import DEFAULT_DATASET
from imdb_cli.errors import ImdbError
from imdb_cli.runs.ledger import LEDGER_NAME, read_ledger
from imdb_cli.runs.run import Run, is_run_dir, latest_run, list_runs
from imdb_cli.runs.sweeps import SweepRecord, format_rate, latest_selected
from imdb_cli.workspace import Workspace


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


@dataclass(frozen=True)
class Selected:
    """The run a name means, and why; with the sweep behind it when a sweep chose it."""

    run: Run
    why: str
    sweep: SweepRecord | None = None
    sweep_runs: tuple[Run, ...] = ()  # the selected rate's completed runs (its seeds)

    def describe(self) -> str:
        return f"{self.run.model}/{self.run.run_id} ({self.why})"


def resolve_run(workspace: Workspace, name: str, dataset: str | None = None) -> Run:
    """The run `name` means (select_run), for callers that need not say why."""
    return select_run(workspace, name, dataset).run


def select_run(workspace: Workspace, name: str, dataset: str | None = None) -> Selected:
    """A run folder path, `model/run-id` (that run, whatever its data), or a model key: the
    run its latest sweep selected, else its latest completed run, on `dataset` when given."""
    as_path = Path(name)
    if as_path.is_dir():
        if not is_run_dir(as_path):
            raise ImdbError(f"{as_path}: not a run folder (no {LEDGER_NAME})")
        return Selected(Run(as_path, read_ledger(as_path)), "the run folder given")
    if "/" in name:
        candidate = workspace.runs / name
        if is_run_dir(candidate):
            return Selected(Run(candidate, read_ledger(candidate)), "the run named")
        raise ImdbError(f"no run '{name}' in {workspace.runs}")
    if not is_model_key(workspace, name):
        known = ", ".join(registry.known_model_keys())
        raise ImdbError(
            f"'{name}' is neither a run folder nor a known model; known models: {known}"
        )
    swept = selected_by_sweep(workspace, name, dataset)
    if swept is not None:
        return swept
    run = latest_run(workspace, name, dataset=dataset)
    if run is None:
        raise _no_completed_run(workspace, name, dataset)
    return Selected(run, "its latest completed run" + (f" on {dataset}" if dataset else ""))


def selected_by_sweep(workspace: Workspace, model: str, dataset: str | None) -> Selected | None:
    """The run of the rate the model's newest sweep (on `dataset`) selected: of its seeds, the
    one with the best validation accuracy (a tie: the first seed of the sweep)."""
    record = latest_selected(workspace, model, dataset)
    if record is None or record.selection.lr is None:
        return None
    runs = record.runs_of(workspace, record.selection.lr)
    if not runs:
        return None
    order = {seed: i for i, seed in enumerate(record.seeds)}
    best = max(
        runs, key=lambda r: (r.ledger.best_val_acc or 0.0, -order.get(r.ledger.config.seed, 0))
    )
    why = f"lr {format_rate(record.selection.lr)} selected by sweep {record.sweep_id} on validation"
    if len(runs) > 1:
        why += f"; the best of its {len(runs)} seeds on validation"
    return Selected(best, why, record, tuple(runs))


def _no_completed_run(workspace: Workspace, model: str, dataset: str | None) -> ImdbError:
    existing = list_runs(workspace, model)
    if dataset is not None:
        elsewhere = sorted(
            {r.ledger.dataset for r in existing if r.ledger.status == "completed"} - {dataset}
        )
        if elsewhere:
            return ImdbError(
                f"model '{model}' has no completed run on {dataset}; it has on "
                f"{', '.join(elsewhere)} (add --dataset {elsewhere[0]})"
            )
    listed = ", ".join(r.describe() for r in existing) or "none"
    on = f" on {dataset}" if dataset is not None else ""
    options = (("dataset", dataset),) if dataset not in (None, DEFAULT_DATASET) else ()
    command = Invocation("train", (model,), options, workspace.as_option())
    return ImdbError(
        f"model '{model}' has no completed run{on} in {workspace.model_runs(model)} "
        f"(runs: {listed}); make one with `{command}`"
    )
