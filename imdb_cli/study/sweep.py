"""Learning-rate sweeps: one ordinary run per (rate, seed), the rate chosen on validation.

    imdb sweep bert --lr 2e-5,3e-5,5e-5 --seeds 42,43

Each trial is a run like any other (`runs/<model>/<sweep-id>-lr<rate>-seed<seed>/`, its
own ledger), so `imdb train --run-name ...` run anywhere makes the same trial, and the
sweep or `compare` finds it by that name. The selection uses validation accuracy only
(each trial's best-epoch validation accuracy, the mean over seeds; a tie goes to the
smaller rate), never test; a rate counts only once every one of its seeds completed, and
nothing is selected before every trial has run (a rate not yet tried may be the best).

The sweep's identity is its model, grid, seeds, data and the rest of its recipe, so the
same command again resumes it: finished trials are not run again, a killed or
interrupted trial continues as `imdb train --resume` does, a failed one (a diverged rate)
stays failed and is reported. The record `<workdir>/sweeps/<model>/<sweep-id>.json` is
rewritten atomically after every trial.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shlex
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imdb_cli.compare.recipes import NOT_RECIPE
from imdb_cli.config import ModelSpec, TrainConfig, flag_name, option_args, train_args
from imdb_cli.console import info, warn
from imdb_cli.errors import ImdbError
from imdb_cli.files import write_json_atomic
from imdb_cli.runs.ledger import LEDGER_NAME, read_ledger
from imdb_cli.runs.select import Run, now_iso
from imdb_cli.workspace import Workspace

if TYPE_CHECKING:  # compare reads sweeps without loading the data layer
    from imdb_cli.data.tokenized import TokenizedCache

SCHEMA_VERSION = 1
SELECTION_RULE = (
    "once every trial has run: highest mean best-epoch validation accuracy over the seeds; "
    "a tie goes to the smaller rate; a rate counts only when all its seeds completed; test "
    "accuracy is not used"
)


def parse_rates(text: str) -> tuple[float, ...]:
    """`2e-5,3e-5` -> (2e-05, 3e-05), sorted, no repeats; errors name --lr."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        rates = [float(p) for p in parts]
    except ValueError as exc:
        raise ImdbError(
            f"--lr {text!r}: give learning rates separated by commas, like 2e-5,3e-5"
        ) from exc
    if not rates:
        raise ImdbError("--lr: give at least one learning rate, like 2e-5,3e-5")
    bad = [r for r in rates if not r > 0 or r != r or r == float("inf")]
    if bad:
        raise ImdbError(f"--lr {text!r}: every rate must be a positive number (got {bad[0]})")
    if len(set(rates)) != len(rates):
        raise ImdbError(f"--lr {text!r}: a rate is repeated")
    return tuple(sorted(rates))


def format_rate(rate: float) -> str:
    return f"{rate:g}"


@dataclass(frozen=True)
class Trial:
    lr: float
    seed: int
    run_name: str
    config: TrainConfig


@dataclass(frozen=True)
class SweepPlan:
    """What a sweep trains: every rate of the grid with every seed, the rest fixed."""

    model: str
    rates: tuple[float, ...]
    seeds: tuple[int, ...]
    base: TrainConfig  # the recipe; its lr and seed are replaced per trial
    data_fingerprint: str

    def identity(self) -> dict[str, Any]:
        recipe = {k: v for k, v in self.base.to_dict().items() if k not in NOT_RECIPE and k != "lr"}
        return {
            "model": self.model,
            "rates": list(self.rates),
            "seeds": list(self.seeds),
            "recipe": recipe,
            "data_fingerprint": self.data_fingerprint,
        }

    @property
    def sweep_id(self) -> str:
        digest = hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()
        return f"sweep-{digest[:8]}"

    def trials(self) -> list[Trial]:
        return [
            Trial(
                lr=rate,
                seed=seed,
                run_name=f"{self.sweep_id}-lr{format_rate(rate)}-seed{seed}",
                config=replace(self.base, lr=rate, seed=seed),
            )
            for rate in self.rates
            for seed in self.seeds
        ]


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class TrialResult:
    lr: float
    seed: int
    run_name: str
    status: str  # pending, running, interrupted, failed, completed
    best_val_acc: float | None = None
    best_epoch: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class RateResult:
    lr: float
    val_accs: list[float]  # of the completed seeds
    seeds: int  # how many the plan has
    problems: list[str] = field(default_factory=list)  # failed or unfinished seeds

    @property
    def complete(self) -> bool:
        return len(self.val_accs) == self.seeds

    @property
    def mean_val_acc(self) -> float | None:
        return sum(self.val_accs) / len(self.val_accs) if self.val_accs else None


@dataclass(frozen=True)
class Selection:
    lr: float | None  # None: no rate has all its seeds completed yet
    reason: str
    rates: list[RateResult]


def trial_result(
    workspace: Workspace, model: str, trial_name: str, lr: float, seed: int
) -> TrialResult:
    """A trial as its run folder says (pending when there is none yet)."""
    path = workspace.model_runs(model) / trial_name
    if not (path / LEDGER_NAME).is_file():
        return TrialResult(lr, seed, trial_name, "pending")
    try:
        ledger = read_ledger(path)
    except ImdbError as exc:
        return TrialResult(lr, seed, trial_name, "failed", error=exc.message)
    return TrialResult(
        lr,
        seed,
        trial_name,
        ledger.status,
        best_val_acc=ledger.best_val_acc if ledger.status == "completed" else None,
        best_epoch=ledger.best_epoch if ledger.status == "completed" else None,
        error=ledger.error,
    )


def select(rates: Sequence[float], seeds: int, trials: Sequence[TrialResult]) -> Selection:
    """The rate with the highest mean validation accuracy over its seeds (ties: smaller)."""
    results = []
    for rate in rates:
        mine = [t for t in trials if t.lr == rate]
        done = [
            t.best_val_acc for t in mine if t.status == "completed" and t.best_val_acc is not None
        ]
        problems = [
            f"seed {t.seed} {t.status}" + (f" ({t.error})" if t.error else "")
            for t in mine
            if t.status != "completed"
        ]
        results.append(RateResult(rate, done, seeds, problems))
    finished = [t for t in trials if t.status in ("completed", "failed")]
    if len(finished) < len(rates) * seeds:
        # A rate not yet tried may be the best: no selection until every trial has run.
        return Selection(
            None,
            f"incomplete: {len(finished)} of {len(rates) * seeds} trials finished; run the "
            "same `imdb sweep` again to finish it",
            results,
        )
    candidates = [r for r in results if r.complete]
    if not candidates:
        return Selection(None, "no rate has all its seeds completed (every one failed)", results)
    best = max(candidates, key=lambda r: (r.mean_val_acc or 0.0, -r.lr))
    ties = [r.lr for r in candidates if r.mean_val_acc == best.mean_val_acc and r.lr != best.lr]
    grid = ", ".join(format_rate(r) for r in rates)
    reason = (
        f"highest mean validation accuracy, {best.mean_val_acc:.4f} over {seeds} seed(s), of {grid}"
    )
    if ties:
        reason += f" (tied with {', '.join(map(format_rate, ties))}: the smaller rate wins)"
    left_out = [format_rate(r.lr) for r in results if not r.complete]
    if left_out:
        reason += f"; not complete, so not considered: {', '.join(left_out)}"
    return Selection(best.lr, reason, results)


# --------------------------------------------------------------------------- the record


def sweeps_dir(workspace: Workspace, model: str) -> Path:
    return workspace.root / "sweeps" / model


def record_path(workspace: Workspace, plan: SweepPlan) -> Path:
    return sweeps_dir(workspace, plan.model) / f"{plan.sweep_id}.json"


def write_record(
    workspace: Workspace,
    plan: SweepPlan,
    trials: Sequence[TrialResult],
    commands: dict[str, str],
    created_at: str,
) -> Path:
    selection = select(plan.rates, len(plan.seeds), trials)
    status = (
        "completed" if all(t.status in ("completed", "failed") for t in trials) else "incomplete"
    )
    document = {
        "schema_version": SCHEMA_VERSION,
        "sweep_id": plan.sweep_id,
        "model": plan.model,
        "status": status,
        "created_at": created_at,
        "updated_at": now_iso(),
        "rates": list(plan.rates),
        "seeds": list(plan.seeds),
        "data_fingerprint": plan.data_fingerprint,
        "recipe": plan.base.to_dict(),
        "rule": SELECTION_RULE,
        "trials": [asdict(t) | {"command": commands.get(t.run_name)} for t in trials],
        "selected_lr": selection.lr,
        "why": selection.reason,
        "per_rate": [
            {
                "lr": r.lr,
                "mean_val_acc": r.mean_val_acc,
                "val_accs": r.val_accs,
                "complete": r.complete,
                "problems": r.problems,
            }
            for r in selection.rates
        ],
    }
    path = record_path(workspace, plan)
    write_json_atomic(path, document)
    return path


@dataclass(frozen=True)
class SweepRecord:
    """A sweep record read back, with its trials' state read from their ledgers now."""

    path: Path
    sweep_id: str
    model: str
    rates: tuple[float, ...]
    seeds: tuple[int, ...]
    trial_names: dict[tuple[float, int], str]
    updated_at: str
    trials: list[TrialResult]
    selection: Selection

    def runs_of(self, workspace: Workspace, lr: float) -> list[Run]:
        """The completed runs of one rate (its seeds)."""
        found = []
        for seed in self.seeds:
            path = workspace.model_runs(self.model) / self.trial_names[(lr, seed)]
            if (path / LEDGER_NAME).is_file():
                ledger = read_ledger(path)
                if ledger.status == "completed":
                    found.append(Run(path, ledger))
        return found

    def describe(self) -> str:
        grid = ", ".join(format_rate(r) for r in self.rates)
        if self.selection.lr is None:
            return f"sweep {self.sweep_id} over {grid}: {self.selection.reason}"
        return f"selected by sweep {self.sweep_id} from {grid} on validation"


def read_record(workspace: Workspace, path: Path) -> SweepRecord:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        model = str(data["model"])
        rates = tuple(float(r) for r in data["rates"])
        seeds = tuple(int(s) for s in data["seeds"])
        names = {(float(t["lr"]), int(t["seed"])): str(t["run_name"]) for t in data["trials"]}
        sweep_id, updated = str(data["sweep_id"]), str(data.get("updated_at", ""))
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise ImdbError(f"{path}: not a readable sweep record ({exc})") from exc
    if not isinstance(data.get("schema_version"), int) or data["schema_version"] > SCHEMA_VERSION:
        raise ImdbError(
            f"{path}: sweep record schema {data.get('schema_version')!r} is not one this imdb reads"
        )
    trials = [
        trial_result(workspace, model, names[(rate, seed)], rate, seed)
        for rate in rates
        for seed in seeds
        if (rate, seed) in names
    ]
    return SweepRecord(
        path,
        sweep_id,
        model,
        rates,
        seeds,
        names,
        updated,
        trials,
        select(rates, len(seeds), trials),
    )


def latest_selected(workspace: Workspace, model: str) -> SweepRecord | None:
    """The newest sweep of `model` that has selected a rate (unreadable records skipped)."""
    folder = sweeps_dir(workspace, model)
    if not folder.is_dir():
        return None
    records = []
    for path in folder.glob("*.json"):
        try:
            record = read_record(workspace, path)
        except ImdbError as exc:
            warn(str(exc.message))
            continue
        if record.selection.lr is not None:
            records.append(record)
    return max(records, key=lambda r: (r.updated_at, r.sweep_id)) if records else None


# --------------------------------------------------------------------------- running


TrainTrial = Callable[[Trial, str | Path | None], Run]  # (trial, resume) -> run


def _clear_unstarted(path: Path) -> None:
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


def _created_at(path: Path) -> str:
    """When the sweep was first planned (its record's `created_at`; now for a new one)."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        return str(json.loads(path.read_text(encoding="utf-8"))["created_at"])
    return now_iso()


def plan_only(workspace: Workspace, spec: ModelSpec, plan: SweepPlan) -> SweepRecord:
    """Write the record (trials and their commands, as they stand) and train nothing."""
    trials = plan.trials()
    states = [trial_result(workspace, plan.model, t.run_name, t.lr, t.seed) for t in trials]
    commands = {t.run_name: trial_command(workspace, spec, plan, t) for t in trials}
    path = write_record(
        workspace, plan, states, commands, _created_at(record_path(workspace, plan))
    )
    return read_record(workspace, path)


def run_sweep(
    workspace: Workspace,
    spec: ModelSpec,
    plan: SweepPlan,
    train_trial: TrainTrial,
    command_of: Callable[[Trial], str],
) -> SweepRecord:
    """Every trial not finished yet, one after another; the record after each."""
    trials = plan.trials()
    commands = {t.run_name: command_of(t) for t in trials}
    created = _created_at(record_path(workspace, plan))

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
            _clear_unstarted(path)
        info(f"{where}{': resuming' if resume else ''}\n  {commands[trial.run_name]}")
        try:
            train_trial(trial, resume)
        except ImdbError as exc:
            warn(f"{where} failed: {exc.message}")
        finally:
            write_record(workspace, plan, state(), commands, created)
    return read_record(workspace, record_path(workspace, plan))


def trial_command(workspace: Workspace, spec: ModelSpec, plan: SweepPlan, trial: Trial) -> str:
    """The `imdb train` command that runs `trial` anywhere: its settings, its run name (so
    the sweep and compare find it) and the sweep's data. The trial's rate and seed are
    always written out, also when they are the YAML's, so that each command says which
    trial it is."""
    args = train_args(spec, trial.config)
    for name in ("lr", "seed"):
        if flag_name(name) not in args:
            args += option_args(name, getattr(trial.config, name))
    args += ["--run-name", trial.run_name]
    args += ["--data", plan.data_fingerprint]
    return shlex.join(["imdb", "--workdir", str(workspace.root), *args])


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
    from imdb_cli.training.loop import train  # torch: only when training

    def train_trial(trial: Trial, resume: str | Path | None) -> Run:
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

    def command_of(trial: Trial) -> str:
        return trial_command(workspace, spec, plan, trial)

    return run_sweep(workspace, spec, plan, train_trial, command_of)
