"""A learning-rate sweep's plan and record: its grid of (rate, seed) trials, each an ordinary
run, and the rate it selects on validation.

Each trial is a run like any other (`runs/<model>/<sweep-id>-lr<rate>-seed<seed>/`, its
own ledger), so `imdb train --run-name ...` run anywhere makes the same trial, and the
sweep or `compare` finds it by that name. The selection uses validation accuracy only
(each trial's best-epoch validation accuracy, the mean over seeds; a tie goes to the
smaller rate), never test; a rate counts only once every one of its seeds completed, and
nothing is selected before every trial has run (a rate not yet tried may be the best).

The sweep's identity is its model, grid, seeds, data and the rest of its recipe. The
record `<workdir>/sweeps/<model>/<sweep-id>.json` is rewritten atomically after every
trial; the state of each trial is read from its ledger, never from the record. Running
the trials: study/sweep.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from imdb_cli.config import TrainConfig
from imdb_cli.console import warn
from imdb_cli.errors import ImdbError
from imdb_cli.files import write_json_atomic
from imdb_cli.runs.ledger import LEDGER_NAME, read_ledger
from imdb_cli.runs.run import Run, now_iso
from imdb_cli.workspace import Workspace

SCHEMA_VERSION = 1
SWEEP_PREFIX = "sweep-"  # a grid sweep's id; a TPE search's starts tpe-
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
        recipe = {k: v for k, v in self.base.recipe().items() if k != "lr"}
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
        return f"{SWEEP_PREFIX}{digest[:8]}"

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


def latest_selected(
    workspace: Workspace, model: str, dataset: str | None = None
) -> SweepRecord | None:
    """The newest sweep of `model` that has selected a rate, on `dataset` when given (its
    runs' data set; unreadable records are skipped with a warning)."""
    folder = sweeps_dir(workspace, model)
    if not folder.is_dir():
        return None
    records = []
    for path in folder.glob(f"{SWEEP_PREFIX}*.json"):  # a TPE search selects no grid rate
        try:
            record = read_record(workspace, path)
        except ImdbError as exc:
            warn(str(exc.message))
            continue
        if record.selection.lr is None:
            continue
        runs = record.runs_of(workspace, record.selection.lr)
        if dataset is None or any(run.ledger.dataset == dataset for run in runs):
            records.append(record)
    return max(records, key=lambda r: (r.updated_at, r.sweep_id)) if records else None


def created_at(path: Path) -> str:
    """When the sweep was first planned (its record's `created_at`; now for a new one)."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        return str(json.loads(path.read_text(encoding="utf-8"))["created_at"])
    return now_iso()


# --------------------------------------------------------------------------- TPE search


SEARCHED = {"lr": "--lr", "warmup_ratio": "--warmup-ratio", "weight_decay": "--weight-decay"}
SEARCH_RULE = (
    "once every trial has run: highest best-epoch validation accuracy; a tie goes to the "
    "earlier trial; test accuracy is not used"
)


def parse_range(text: str, setting: str) -> tuple[float, float]:
    """`1e-5:1e-4` -> (1e-05, 0.0001) for a searched setting; errors name its flag."""
    flag = SEARCHED[setting] + ("" if setting == "lr" else "-range")
    parts = text.split(":")
    try:
        low, high = (float(p) for p in parts)
    except ValueError as exc:
        raise ImdbError(f"{flag} {text!r}: give a range LOW:HIGH, like 1e-5:1e-4") from exc
    if not low < high:
        raise ImdbError(f"{flag} {text!r}: LOW must be below HIGH")
    if setting == "lr" and low <= 0:
        raise ImdbError(f"{flag} {text!r}: rates must be positive (searched on a log scale)")
    if low < 0 or (setting == "warmup_ratio" and high >= 1):
        raise ImdbError(f"{flag} {text!r}: out of the setting's range")
    return low, high


@dataclass(frozen=True)
class SearchPlan:
    """`--search tpe`: Optuna's TPE sampler draws the rate (log scale), and the warmup and
    weight decay where ranges are given, for `trials` runs of one seed; the best
    validation accuracy wins."""

    model: str
    trials: int
    ranges: tuple[tuple[str, float, float], ...]  # (setting, low, high)
    seed: int
    base: TrainConfig
    data_fingerprint: str

    def identity(self) -> dict[str, Any]:
        searched = {name for name, _, _ in self.ranges}
        recipe = {k: v for k, v in self.base.recipe().items() if k not in searched}
        return {
            "search": "tpe",
            "model": self.model,
            "trials": self.trials,
            "ranges": [list(r) for r in self.ranges],
            "seed": self.seed,
            "recipe": recipe,
            "data_fingerprint": self.data_fingerprint,
        }

    @property
    def sweep_id(self) -> str:
        digest = hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()
        return f"tpe-{digest[:8]}"

    def run_name(self, slot: int) -> str:
        return f"{self.sweep_id}-trial{slot + 1:03d}"

    def trial(self, slot: int, params: dict[str, float]) -> Trial:
        config = self.base.with_overrides(seed=self.seed, **params)
        return Trial(config.lr, self.seed, self.run_name(slot), config)


@dataclass(frozen=True)
class SearchResult:
    slot: int
    run_name: str
    status: str
    params: dict[str, float]  # the searched settings, as its ledger has them
    best_val_acc: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class SearchRecord:
    path: Path
    plan: SearchPlan
    results: list[SearchResult]
    selected: SearchResult | None
    reason: str


def search_results(workspace: Workspace, plan: SearchPlan) -> list[SearchResult]:
    results = []
    for slot in range(plan.trials):
        name = plan.run_name(slot)
        path = workspace.model_runs(plan.model) / name
        if not (path / LEDGER_NAME).is_file():
            results.append(SearchResult(slot, name, "pending", {}))
            continue
        try:
            ledger = read_ledger(path)
        except ImdbError as exc:
            results.append(SearchResult(slot, name, "failed", {}, error=exc.message))
            continue
        params = {k: float(getattr(ledger.config, k)) for k, _, _ in plan.ranges}
        best = ledger.best_val_acc if ledger.status == "completed" else None
        results.append(SearchResult(slot, name, ledger.status, params, best, ledger.error))
    return results


def select_search(
    plan: SearchPlan, results: Sequence[SearchResult]
) -> tuple[SearchResult | None, str]:
    finished = [r for r in results if r.status in ("completed", "failed")]
    if len(finished) < plan.trials:
        return None, (
            f"incomplete: {len(finished)} of {plan.trials} trials finished; run the same "
            "`imdb sweep` again to finish it"
        )
    done = [r for r in results if r.status == "completed" and r.best_val_acc is not None]
    if not done:
        return None, "no trial completed (every one failed)"
    best = max(done, key=lambda r: (r.best_val_acc or 0.0, -r.slot))
    return best, (
        f"highest validation accuracy, {best.best_val_acc:.4f}, of {len(done)} completed "
        f"trial(s) drawn by TPE"
    )


def write_search_record(workspace: Workspace, plan: SearchPlan) -> SearchRecord:
    path = sweeps_dir(workspace, plan.model) / f"{plan.sweep_id}.json"
    results = search_results(workspace, plan)
    selected, reason = select_search(plan, results)
    finished = all(r.status in ("completed", "failed") for r in results)
    document = {
        "schema_version": SCHEMA_VERSION,
        "search": "tpe",
        "sweep_id": plan.sweep_id,
        "model": plan.model,
        "status": "completed" if finished else "incomplete",
        "created_at": created_at(path),
        "updated_at": now_iso(),
        "trials": plan.trials,
        "ranges": {name: [low, high] for name, low, high in plan.ranges},
        "seed": plan.seed,
        "data_fingerprint": plan.data_fingerprint,
        "recipe": plan.base.to_dict(),
        "rule": SEARCH_RULE,
        "results": [asdict(r) for r in results],
        "selected": selected.run_name if selected else None,
        "selected_params": selected.params if selected else None,
        "why": reason,
    }
    write_json_atomic(path, document)
    return SearchRecord(path, plan, results, selected, reason)
