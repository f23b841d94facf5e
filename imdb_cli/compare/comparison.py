"""The comparison: runs -> rows with confidence intervals, seeds, the verdict, recipes
and where the errors are.

`compare` reads ledgers (never checkpoints): every number shown is a ledger's number, or
a statistic computed from the ledgers' per-review test records here (Wilson interval,
McNemar, paired bootstrap, mean ± std over seeds, confusion matrix, calibration). The
one exception is accuracy by review length, which needs each test review's full token
count (review_lengths, from the run's data cache and tokenizer). The same `Comparison`
renders as rich tables, markdown, csv or json, and in `imdb reproduce`'s report.md.

The verdict (verdict.py) is about encoders, not checkpoints: with two or more seeds per
model it tests the difference in mean test accuracy across seeds and test reviews; with
one seed on a side it says that it compares two checkpoints (McNemar) and how many seeds
would compare the encoders. p-values are Holm-adjusted over the pairs.

Selection rules (one place, so the help text, the report and the tests agree):
- a model key selects every completed run of the model with the same settings (the seed
  aside) tested on the same test reviews as its latest completed run: the row's figures
  are the mean over them (± std), the verdict uses each of them, and the latest is the
  run shown for learning curves and where the errors are;
- a run folder or `model/run-id` selects exactly that run; several of one model that
  differ only by seed are that model's seeds, one row;
- no argument selects every model of the workspace that has a completed run.
Runs that failed, are running, were interrupted or have no test result are listed as not
comparable, never shown as results. Every comparison that is not like for like (weights,
recipe, seeds, test reviews, a loaded machine) gets a warning line (recipes.warnings).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from imdb_cli import registry
from imdb_cli.compare import breakdown, recipes, stats, verdict
from imdb_cli.compare.verdict import format_p
from imdb_cli.config import Invocation, TrainConfig
from imdb_cli.console import info
from imdb_cli.data.entry import DEFAULT_DATASET
from imdb_cli.errors import ImdbError
from imdb_cli.runs.caches import local_copy
from imdb_cli.runs.ledger import Ledger, TestRecord
from imdb_cli.runs.run import Run, list_runs
from imdb_cli.runs.select import models_with_completed_runs, select_run, selected_by_sweep
from imdb_cli.runs.sweeps import SweepRecord
from imdb_cli.workspace import Workspace

CONFIDENCE = 0.95
ALPHA = 0.05
CALIBRATION_METHOD = (
    f"top-label expected calibration error over up to {breakdown.CALIBRATION_BINS} "
    "equal-mass bins of the predicted class's probability (tied confidences share a bin), "
    f"{CONFIDENCE:.0%} bootstrap interval over the test reviews (ECE on few reviews is "
    "biased upward, resampled ones more so: the interval can lie above the estimate); "
    "Brier score and log loss (scikit-learn)"
)
LENGTHS_METHOD = (
    "accuracy by review length: the full review's token count before truncation (the "
    "run's tokenizer, special tokens included), Wilson interval per bucket; a description, "
    "not what truncation costs (that needs a run at a longer max length)"
)


# --------------------------------------------------------------------------- data model


@dataclass(frozen=True)
class Spread:
    """A metric over several runs: mean and sample std (ddof=1; None for one run)."""

    mean: float
    std: float | None
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        mean, std = stats.mean_std(values)
        return cls(mean, std, len(values))


@dataclass(frozen=True)
class ModelRow:
    """One line of the table: the shown run of a model, plus its spread over seeds."""

    label: str  # model key, or model/run-id when a model has several rows
    model: str
    run_id: str
    run_path: str
    best_val_acc: float | None
    best_epoch: int | None
    test_epoch: int
    test_loss: float
    test_acc: float
    test_samples: int
    test_correct: int
    ci_low: float
    ci_high: float
    parameters: int
    train_seconds: float
    train_samples_per_s: float
    max_length: int | None
    truncation: str | None
    dataset: str  # the data set's name
    data_fingerprint: str | None
    split_seed: int | None
    seed: int | None  # the training seed of the shown run
    runs: int  # how many runs the spreads are over (the shown one included)
    run_ids: list[str]
    test_acc_spread: Spread
    test_loss_spread: Spread
    best_val_acc_spread: Spread | None
    recipe: recipes.Recipe
    curve: list[EpochPoint]
    errors: Errors
    accuracy: verdict.MeanInterval  # test accuracy over every seed, with its interval
    sweep: SweepSummary | None = None  # how the learning rate was chosen, when by a sweep
    # Beats every other row by the verdict's adjusted test across seeds (never on the
    # point estimate alone).
    best: bool = False
    seed_curves: list[SeedCurve] = field(default_factory=list)  # every run of `run_ids`

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["recipe"] = self.recipe.to_dict()
        data["errors"] = self.errors.to_dict()
        return data


@dataclass(frozen=True)
class SweepRate:
    lr: float
    mean_val_acc: float | None  # over the completed seeds
    val_accs: list[float]
    complete: bool
    low: float | None = None  # the interval of mean_val_acc (verdict.validation_interval)
    high: float | None = None
    within_noise: bool = False  # its interval overlaps the selected rate's


def _overlap(a: SweepRate, b: SweepRate) -> bool:
    if a.low is None or a.high is None or b.low is None or b.high is None:
        return False
    return a.low <= b.high and b.low <= a.high


@dataclass(frozen=True)
class SweepSummary:
    """The learning-rate grid a row's rate was selected from (validation only)."""

    sweep_id: str
    path: str
    selected_lr: float
    reason: str
    seeds: list[int]
    rates: list[SweepRate]
    val_reviews: int | None = None  # how many validation reviews each accuracy is over

    @classmethod
    def of(cls, record: SweepRecord, val_reviews: int | None = None) -> SweepSummary:
        assert record.selection.lr is not None
        rates = []
        for r in record.selection.rates:
            interval = verdict.validation_interval(r.val_accs, val_reviews) if r.complete else None
            low, high = interval if interval is not None else (None, None)
            rates.append(SweepRate(r.lr, r.mean_val_acc, list(r.val_accs), r.complete, low, high))
        chosen = next(r for r in rates if r.lr == record.selection.lr)
        rates = [replace(r, within_noise=r.lr != chosen.lr and _overlap(r, chosen)) for r in rates]
        return cls(
            sweep_id=record.sweep_id,
            path=str(record.path),
            selected_lr=record.selection.lr,
            reason=record.selection.reason,
            seeds=list(record.seeds),
            rates=rates,
            val_reviews=val_reviews,
        )

    def certainty(self) -> str:
        """How sure the choice is, and what the model's result is instead."""
        reviews = (
            f"{self.val_reviews:,} validation reviews"
            if self.val_reviews
            else ("an unknown number of validation reviews")
        )
        close = [f"{r.lr:g}" for r in self.rates if r.within_noise]
        noise = (
            f"{', '.join(close)} within noise of it (intervals overlap)"
            if close
            else "no other rate within noise of it"
        )
        return (
            f"chose {self.selected_lr:g} on {reviews}, {noise}; the best validation accuracy "
            "is a maximum and biased upward, so the model's result is its test accuracy"
        )


@dataclass(frozen=True)
class EpochPoint:
    """One epoch of a learning curve (the ledger's per-review train and val metrics)."""

    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float


@dataclass(frozen=True)
class SeedCurve:
    """The learning curve of one run a row's spread is over, and the epoch it tested."""

    run_id: str
    seed: int
    tested_epoch: int | None  # the best validation epoch, whose checkpoint was tested
    points: list[EpochPoint]


@dataclass(frozen=True)
class Errors:
    """Where the shown run's test errors are (breakdown of its per-review predictions)."""

    confusion: breakdown.Confusion
    calibration: breakdown.Calibration
    lengths: list[breakdown.LengthBucket] | None = None
    lengths_note: str | None = None  # why there are no length buckets

    def to_dict(self) -> dict[str, Any]:
        return {
            "confusion": self.confusion.to_dict(),
            "calibration": self.calibration.to_dict(),
            "length_buckets": None
            if self.lengths is None
            else [bucket.to_dict() for bucket in self.lengths],
            "length_buckets_note": self.lengths_note,
        }


@dataclass(frozen=True)
class PairResult:
    """The latest runs of two rows (two checkpoints) on the same test reviews: McNemar and
    the review bootstrap. A checkpoint-level view; the verdict is in `Comparison.verdict`."""

    a: str
    b: str
    acc_a: float
    acc_b: float
    mcnemar: stats.McNemarResult
    bootstrap: stats.BootstrapResult

    @property
    def significant(self) -> bool:
        return self.mcnemar.p_value < ALPHA

    @property
    def winner(self) -> str | None:
        if not self.significant:
            return None
        return self.a if self.mcnemar.b > self.mcnemar.c else self.b

    def verdict(self) -> str:
        """The checkpoints in words (unadjusted: the verdict adjusts over the pairs)."""
        m = self.mcnemar
        p = format_p(m.p_value)
        return (
            f"checkpoints {self.a} vs {self.b} (latest runs): {self.acc_a:.4f} vs "
            f"{self.acc_b:.4f}, McNemar p = {p} (b={m.b}, c={m.c})"
        )

    def difference(self) -> str:
        """`minilm - tiny-bert: +0.0800 (95% bootstrap CI +0.0450 to +0.1150)`."""
        boot = self.bootstrap
        return (
            f"{self.a} - {self.b}: {boot.difference:+.4f} ({boot.confidence:.0%} bootstrap CI "
            f"{boot.low:+.4f} to {boot.high:+.4f})"
        )

    def to_dict(self) -> dict[str, Any]:
        m = self.mcnemar
        return {
            "a": self.a,
            "b": self.b,
            "acc_a": self.acc_a,
            "acc_b": self.acc_b,
            "reviews": m.n,
            "a_right_b_wrong": m.b,
            "a_wrong_b_right": m.c,
            "p_value": m.p_value,
            "test": m.method,
            "chi2": m.statistic,
            "significant": self.significant,
            "winner": self.winner,
            "verdict": self.verdict(),
            "acc_difference": self.bootstrap.difference,
            "acc_difference_ci_low": self.bootstrap.low,
            "acc_difference_ci_high": self.bootstrap.high,
            "bootstrap": asdict(self.bootstrap),
        }


@dataclass(frozen=True)
class Unpaired:
    a: str
    b: str
    reason: str

    def message(self) -> str:
        return f"{self.a} and {self.b} {self.reason}: shown unpaired"


@dataclass(frozen=True)
class NotComparable:
    run: str  # model/run-id
    path: str
    status: str
    reason: str

    def message(self) -> str:
        return f"{self.run}: {self.reason}"


@dataclass
class Comparison:
    rows: list[ModelRow]
    pairs: list[PairResult] = field(default_factory=list)
    unpaired: list[Unpaired] = field(default_factory=list)
    not_comparable: list[NotComparable] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # not like for like, one line each
    verdict: verdict.Verdict = field(default_factory=verdict.Verdict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.to_dict(),
            "confidence": CONFIDENCE,
            "ci_method": stats.CI_METHOD,
            "alpha": ALPHA,
            "paired_test": stats.MCNEMAR_METHOD,
            "difference_method": stats.BOOTSTRAP_METHOD,
            "calibration_method": CALIBRATION_METHOD,
            "length_buckets_method": LENGTHS_METHOD,
            "warnings": self.warnings,
            "models": [r.to_dict() for r in self.rows],
            "pairs": [p.to_dict() for p in self.pairs],
            "unpaired": [asdict(u) | {"message": u.message()} for u in self.unpaired],
            "not_comparable": [asdict(n) for n in self.not_comparable],
            "notes": self.notes,
        }


@dataclass(frozen=True)
class Selection:
    """A run to show, and the runs its spread over seeds may draw on."""

    run: Run
    seed_candidates: tuple[Run, ...] = ()
    sweep: SweepRecord | None = None  # the sweep that chose the run's learning rate
    why: str = ""  # why this run (runs.select's words), said on stderr by `compare`

    def describe(self) -> str:
        return f"{self.run.model}/{self.run.run_id} ({self.why})"


# --------------------------------------------------------------------------- selection


def select_runs(
    workspace: Workspace, targets: Sequence[str], dataset: str = DEFAULT_DATASET
) -> tuple[list[Selection], list[NotComparable]]:
    """Resolve what the user typed (model keys, `model/run-id`, run folders) into runs. A
    model key means its runs on `dataset`; a run folder or id means that run."""
    if not targets:
        targets = models_with_completed_runs(workspace, dataset)
        if not targets:
            raise ImdbError(
                f"no completed runs in {workspace.runs} on {dataset}; make one with "
                "`imdb train MODEL`"
                + (f" --dataset {dataset}" if dataset != DEFAULT_DATASET else "")
            )
    selections: list[Selection] = []
    rejected: list[NotComparable] = []
    seen: set[Path] = set()
    for target in targets:
        is_model_key = (
            "/" not in target
            and not Path(target).is_dir()
            and target in registry.known_model_keys()
        )
        swept = _swept(workspace, target, dataset) if is_model_key else None
        if swept is not None:
            selections.append(swept)
            seen.add(swept.run.path.resolve())
            continue
        # Raises with the runs that exist.
        chosen = select_run(workspace, target, dataset if is_model_key else None)
        run = chosen.run
        if run.path.resolve() in seen:
            continue
        seen.add(run.path.resolve())
        problem = why_not_comparable(run)
        if problem is not None:
            rejected.append(problem)
            continue
        candidates = (
            tuple(r for r in list_runs(workspace, run.model) if r.ledger.dataset == dataset)
            if is_model_key
            else (run,)
        )
        selections.append(Selection(run, candidates, why=chosen.why))
    return _named_seeds(selections), rejected


def _named_seeds(selections: Sequence[Selection]) -> list[Selection]:
    """Runs named one by one (`bert/s1 bert/s2`) that differ only by seed are one model's
    seeds: one selection, its latest run shown."""
    named: dict[str, list[Selection]] = {}
    for selection in selections:
        if selection.seed_candidates == (selection.run,):
            named.setdefault(selection.run.model, []).append(selection)
    merged: dict[int, Selection] = {}  # id of the first selection of a group -> the group
    dropped: set[int] = set()
    for group in named.values():
        if len(group) < 2:
            continue
        shown = max(group, key=lambda s: (s.run.ledger.created_at, s.run.run_id))
        same, _ = _same_experiment(shown.run, [s.run for s in group])
        if len(same) < 2:
            continue
        members = [s for s in group if s.run in same]
        why = f"the newest of the {len(same)} runs named, which differ only by seed"
        merged[id(members[0])] = Selection(shown.run, tuple(same), why=why)
        dropped.update(id(s) for s in members[1:])
    return [merged.get(id(s), s) for s in selections if id(s) not in dropped]


def _swept(workspace: Workspace, model: str, dataset: str) -> Selection | None:
    """The selected rate's runs of the model's newest sweep on `dataset`, showing the run
    every other command takes for the model key (runs.select)."""
    selected = selected_by_sweep(workspace, model, dataset)
    if selected is None or selected.sweep is None:
        return None
    return Selection(selected.run, selected.sweep_runs, selected.sweep, selected.why)


def why_not_comparable(run: Run) -> NotComparable | None:
    ledger = run.ledger
    name = f"{ledger.model}/{ledger.run_id}"
    done = len(ledger.epochs)
    reason: str | None
    if ledger.status == "running":
        reason = f"still running ({done} epoch(s) done); not a result yet"
    elif ledger.status == "failed":
        reason = f"failed ({ledger.error or 'no error recorded'}); not a result"
    elif ledger.status == "interrupted":
        reason = f"interrupted after {done} epoch(s); finish it with `{run.resume_invocation()}`"
    elif ledger.test is None:
        reason = "completed but its ledger holds no test result"
    else:
        reason = None
    if reason is None:
        return None
    return NotComparable(name, str(run.path), ledger.status, reason)


# --------------------------------------------------------------------------- building


def build_comparison(
    selections: Sequence[Selection],
    not_comparable: Sequence[NotComparable] = (),
    *,
    workspace: Workspace | None = None,
    lengths: bool = False,
) -> Comparison:
    """The rows, pairs and warnings of the selected runs.

    `lengths`: also the accuracy by review length, which counts the tokens of the test
    reviews once per data set and tokenizer (seconds; then cached in the workspace).
    """
    if not selections:
        listed = "; ".join(n.message() for n in not_comparable)
        raise ImdbError(f"nothing to compare: {listed}" if listed else "nothing to compare")
    counts: dict[str, int] = {}
    for selection in selections:
        counts[selection.run.model] = counts.get(selection.run.model, 0) + 1
    comparison = Comparison(rows=[], not_comparable=list(not_comparable))
    ledgers: dict[str, Ledger] = {}
    runs_of: dict[str, list[Run]] = {}
    for selection in selections:
        run = selection.run
        label = run.model if counts[run.model] == 1 else f"{run.model}/{run.run_id}"
        seeds, left_out = _same_experiment(run, selection.seed_candidates)
        comparison.notes += left_out.notes(label)
        errors = _errors(run, workspace if lengths else None)
        comparison.rows.append(_row(label, run, seeds, errors, selection.sweep))
        ledgers[label] = run.ledger
        runs_of[label] = seeds
    labels = [r.label for r in comparison.rows]
    for i, a in enumerate(labels):
        for b in labels[i + 1 :]:
            pair = pair_runs(a, ledgers[a], b, ledgers[b])
            if isinstance(pair, PairResult):
                comparison.pairs.append(pair)
            else:
                comparison.unpaired.append(pair)
    comparison.verdict = verdict.Verdict(_judge(comparison, runs_of))
    comparison.rows = [replace(r, best=_beats_all(r.label, comparison)) for r in comparison.rows]
    shown = [runs_of[label][0] for label in labels]
    comparison.verdict = replace(comparison.verdict, seeds_hint=seeds_hint(comparison, shown))
    comparison.warnings = recipes.warnings(
        labels, [r.recipe for r in comparison.rows], seeds_hint=comparison.verdict.seeds_hint
    )
    comparison.warnings += [
        f"not on the same test reviews: {u.message()}" for u in comparison.unpaired
    ]
    return comparison


def _seed_matrix(runs: Sequence[Run]) -> np.ndarray:
    """seeds x reviews correctness of runs tested on the same reviews (sorted by id)."""
    rows = []
    for run in runs:
        test = run.ledger.test
        assert test is not None
        right = _correctness(test)
        rows.append([right[i][1] for i in sorted(right)])
    return np.asarray(rows, dtype=np.float64)


def _val_reviews(ledger: Ledger) -> int | None:
    return ledger.epochs[-1].val_samples if ledger.epochs else None


def _accuracy(seeds: Sequence[Run]) -> verdict.MeanInterval:
    """The mean over seeds and its interval; runs without per-review predictions (older
    ledgers) give the shown run's Wilson interval."""
    test = seeds[0].ledger.test
    assert test is not None
    if not test.review_ids:
        correct = round(test.acc * test.samples)
        low, high = stats.wilson_interval(correct, test.samples, CONFIDENCE)
        return verdict.MeanInterval(test.acc, low, high, 1, verdict.WILSON_METHOD)
    return verdict.mean_interval(_seed_matrix(seeds))


def _judge(comparison: Comparison, runs_of: Mapping[str, list[Run]]) -> list[verdict.PairVerdict]:
    """The verdict of every paired pair, from every seed's run of each row."""
    paired = {label for p in comparison.pairs for label in (p.a, p.b)}
    models = {
        label: verdict.ModelRuns(label, _seed_matrix(runs_of[label]), latest=0) for label in paired
    }
    recipe_of = {row.label: row.recipe for row in comparison.rows}
    caveats = {}
    for pair in comparison.pairs:
        if recipe_of[pair.a].pretrained != recipe_of[pair.b].pretrained:
            caveats[(pair.a, pair.b)] = (
                "pretrained weights against random init: it says nothing about the encoders"
            )
    return verdict.judge(
        [(models[p.a], models[p.b]) for p in comparison.pairs], alpha=ALPHA, caveats=caveats
    )


def _beats_all(label: str, comparison: Comparison) -> bool:
    """Whether the adjusted test across seeds finds `label` better than every other row."""
    others = len(comparison.rows) - 1
    wins = sum(1 for v in comparison.verdict.pairs if v.winner == label)
    return others > 0 and wins == others


PRACTICAL_SEEDS = 10  # more than this a model, the hint asks for more test reviews first


# The training settings `imdb reproduce` takes (TrainConfig's fields marked for it), less
# the device, which is the machine's business rather than the study's.
_STUDY_SETTINGS = tuple(
    f.name for f in fields(TrainConfig) if f.metadata.get("reproduce") and f.name != "device"
)


def study_options(runs: Sequence[Run]) -> tuple[tuple[tuple[str, Any], ...], bool]:
    """The options of `imdb reproduce` that make the shown runs' study again with more seeds
    (their data set, local copy, --limit and split seed, and each setting they share that
    some model's YAML does not give), and whether the runs differ in a setting that one
    `reproduce` cannot give them all."""
    if not runs:
        return (), False
    options: list[tuple[str, Any]] = []
    differing = False
    yamls = [_yaml_settings(run) for run in runs]
    for name in _STUDY_SETTINGS:
        values = [getattr(run.ledger.config, name) for run in runs]
        pairs = zip(values, yamls, strict=True)
        off_yaml = any(yaml is None or v != getattr(yaml, name) for v, yaml in pairs)
        if all(v == values[0] for v in values):
            if off_yaml:
                options.append((name, values[0]))
        elif off_yaml:
            differing = True
    data: list[tuple[Any, ...]] = []  # each run's (dataset, data_dir, limit, split_seed)
    for run in runs:
        record = run.ledger.data
        data.append((run.dataset_option(), local_copy(run.ledger), record.limit, record.split_seed))
    if all(d == data[0] for d in data):
        names = ("dataset", "data_dir", "limit", "split_seed")
        options = [(n, v) for n, v in zip(names, data[0], strict=True) if v is not None] + options
    else:
        differing = True
    return tuple(options), differing


def _yaml_settings(run: Run) -> TrainConfig | None:
    """The training settings of the run's model YAML; None when it is no longer registered."""
    try:
        return registry.load_spec(run.model).training
    except ImdbError:
        return None


def seeds_hint(comparison: Comparison, runs: Sequence[Run]) -> str | None:
    """The commands that add the seeds the verdict asks for (its power figure), with the
    options the shown `runs` were made with."""
    count = comparison.verdict.suggested_seeds
    if count is None:
        return None
    models = ",".join(dict.fromkeys(row.model for row in comparison.rows))
    lower = any(v.level == verdict.CHECKPOINTS for v in comparison.verdict.pairs)
    shared, differing = study_options(runs)

    def study(seeds: int) -> Invocation:
        listed = ",".join(str(42 + i) for i in range(seeds))
        options = (("models", models), *shared, ("seeds", listed))
        return Invocation("reproduce", options=options)

    others = " (with the settings the models differ in)" if differing else ""
    if count <= PRACTICAL_SEEDS:
        one = Invocation("train", ("MODEL",), (("seed", "N"),))
        return (
            f"{'at least ' if lower else ''}{count} seeds per model find one point with "
            f"probability {verdict.POWER:.0%}: {study(count)}{others}, or {one} for each "
            "seed a model lacks"
        )
    reviews = min(v.reviews for v in comparison.verdict.pairs)
    needed = (
        f"more than {verdict.MAX_SEEDS}"
        if count > verdict.MAX_SEEDS
        else f"{'at least ' if lower else ''}{count}"
    )
    return (
        f"one point needs {needed} seeds per model on {reviews} test reviews, so more test "
        f"reviews first (a larger --limit); to measure the seed-to-seed variance: {study(3)}"
        f"{others}"
    )


@dataclass(frozen=True)
class LeftOut:
    """Completed runs of a model kept out of its spread over seeds, by why."""

    different: int = 0  # other settings, data or test reviews
    repeated: int = 0  # a seed already counted: training again is not another seed

    def notes(self, label: str) -> list[str]:
        notes = []
        if self.different:
            notes.append(
                f"{label}: {self.different} other completed run(s) with different settings "
                "or test reviews left out of mean ± std"
            )
        if self.repeated:
            notes.append(
                f"{label}: {self.repeated} completed run(s) repeating a seed already counted "
                "left out of mean ± std (the same seed again is not another seed)"
            )
        return notes


def _same_experiment(run: Run, candidates: Sequence[Run]) -> tuple[list[Run], LeftOut]:
    """The completed, tested runs that differ from `run` only by seed, one per seed (run
    first, then the oldest of each other seed)."""
    test = run.ledger.test
    assert test is not None
    reviews = sorted(test.review_ids)
    same = [run]
    seeds = {run.ledger.config.seed}
    different = repeated = 0
    for other in candidates:
        if other.path.resolve() == run.path.resolve() or other.ledger.status != "completed":
            continue
        other_test = other.ledger.test
        if (
            other_test is not None
            and other.ledger.config.recipe() == run.ledger.config.recipe()
            and other.ledger.data.data_fingerprint == run.ledger.data.data_fingerprint
            # Its per-review predictions enter the verdict; that they give its accuracy was
            # checked when its ledger was read (runs/ledger_checks.py).
            and sorted(other_test.review_ids) == reviews
        ):
            if other.ledger.config.seed in seeds:
                repeated += 1
            else:
                seeds.add(other.ledger.config.seed)
                same.append(other)
        else:
            different += 1
    return same, LeftOut(different, repeated)


def _row(
    label: str, run: Run, seeds: Sequence[Run], errors: Errors, swept: SweepRecord | None
) -> ModelRow:
    ledger = run.ledger
    test = ledger.test
    assert test is not None
    if test.samples < 1:
        raise ImdbError(f"{run.path}: test result over 0 reviews")
    correct = round(test.acc * test.samples)
    low, high = stats.wilson_interval(correct, test.samples, CONFIDENCE)
    tests = [s.ledger.test for s in seeds if s.ledger.test is not None]
    vals = [s.ledger.best_val_acc for s in seeds if s.ledger.best_val_acc is not None]
    seed_values = [s.ledger.config.seed for s in seeds]
    return ModelRow(
        label=label,
        model=ledger.model,
        run_id=ledger.run_id,
        run_path=str(run.path),
        best_val_acc=ledger.best_val_acc,
        best_epoch=ledger.best_epoch,
        test_epoch=test.epoch,
        test_loss=test.loss,
        test_acc=test.acc,
        test_samples=test.samples,
        test_correct=correct,
        ci_low=low,
        ci_high=high,
        parameters=ledger.parameters,
        train_seconds=ledger.train_seconds,
        train_samples_per_s=ledger.train_samples_per_s,
        max_length=ledger.tokenization.max_length,
        truncation=ledger.tokenization.truncation,
        dataset=ledger.dataset,
        data_fingerprint=ledger.data.data_fingerprint,
        split_seed=ledger.data.split_seed,
        seed=ledger.config.seed,
        runs=len(seeds),
        run_ids=[s.run_id for s in seeds],
        test_acc_spread=Spread.of([t.acc for t in tests]),
        accuracy=_accuracy(seeds),
        test_loss_spread=Spread.of([t.loss for t in tests]),
        best_val_acc_spread=Spread.of(vals) if len(vals) == len(seeds) else None,
        recipe=replace(
            recipes.recipe_of(run, seed_values),
            lr_selection=swept.describe() if swept is not None else None,
            lr_grid=list(swept.rates) if swept is not None else None,
        ),
        sweep=SweepSummary.of(swept, _val_reviews(ledger)) if swept is not None else None,
        curve=_curve(ledger),
        errors=errors,
        seed_curves=[
            SeedCurve(
                run_id=s.run_id,
                seed=s.ledger.config.seed,
                tested_epoch=s.ledger.test.epoch if s.ledger.test is not None else None,
                points=_curve(s.ledger),
            )
            for s in sorted(seeds, key=_by_seed)
        ],
    )


def _by_seed(run: Run) -> tuple[int, str]:
    return run.ledger.config.seed, run.run_id


def _curve(ledger: Ledger) -> list[EpochPoint]:
    return [
        EpochPoint(e.epoch, e.train_loss, e.train_acc, e.val_loss, e.val_acc) for e in ledger.epochs
    ]


def _errors(run: Run, workspace: Workspace | None) -> Errors:
    """The shown run's confusion matrix and calibration; length buckets when asked for
    (`workspace` given) and the run's data cache is still there."""
    ledger = run.ledger
    found = Errors(breakdown.confusion(ledger), breakdown.calibration(ledger))
    if workspace is None:
        return found
    from imdb_cli.compare import review_lengths

    try:
        counts = review_lengths.full_token_counts(workspace, run)
        buckets = breakdown.length_buckets(ledger, counts)
    except (ImdbError, KeyError) as exc:
        reason = exc.message if isinstance(exc, ImdbError) else str(exc)
        return replace(found, lengths_note=f"no accuracy by length: {reason}")
    return replace(found, lengths=buckets)


def _correctness(test: TestRecord) -> dict[int, tuple[int, bool]]:
    """Review id -> (true class, whether the run's prediction is right)."""
    predicted = test.predicted()
    return {
        int(rid): (int(label), int(guess) == int(label))
        for rid, label, guess in zip(test.review_ids, test.labels, predicted, strict=True)
    }


def pair_runs(a: str, ledger_a: Ledger, b: str, ledger_b: Ledger) -> PairResult | Unpaired:
    """McNemar and the bootstrap interval on the reviews both were tested on, or why they
    cannot be paired."""
    test_a, test_b = ledger_a.test, ledger_b.test
    assert test_a is not None and test_b is not None
    if ledger_a.dataset != ledger_b.dataset:
        return Unpaired(
            a,
            b,
            f"were trained on different data sets ({ledger_a.dataset} vs {ledger_b.dataset}); "
            "only runs on the same data set are paired",
        )
    for label, test in ((a, test_a), (b, test_b)):
        if not test.review_ids or not len(test.review_ids) == len(test.probs) == len(test.labels):
            return Unpaired(a, b, f"cannot be paired ({label} has no per-review test predictions)")
    data_a, data_b = ledger_a.data, ledger_b.data
    for what, va, vb in (
        ("data fingerprint", data_a.data_fingerprint, data_b.data_fingerprint),
        ("split seed", data_a.split_seed, data_b.split_seed),
    ):
        if va != vb:
            return Unpaired(a, b, f"were tested on different test splits ({what} {va} vs {vb})")
    right_a, right_b = _correctness(test_a), _correctness(test_b)
    if set(right_a) != set(right_b):
        shared = len(set(right_a) & set(right_b))
        return Unpaired(
            a,
            b,
            f"were tested on different test reviews ({len(right_a)} vs {len(right_b)} "
            f"reviews, {shared} shared)",
        )
    disagree = sum(1 for rid in right_a if right_a[rid][0] != right_b[rid][0])
    if disagree:
        return Unpaired(a, b, f"disagree on the labels of {disagree} test reviews")
    ids = sorted(right_a)
    correct_a = [right_a[i][1] for i in ids]
    correct_b = [right_b[i][1] for i in ids]
    return PairResult(
        a,
        b,
        test_a.acc,
        test_b.acc,
        stats.mcnemar(correct_a, correct_b),
        stats.paired_bootstrap(correct_a, correct_b, confidence=CONFIDENCE),
    )


def compare(
    workspace: Workspace,
    targets: Sequence[str],
    *,
    dataset: str = DEFAULT_DATASET,
    lengths: bool = False,
) -> Comparison:
    """The whole `imdb compare`: resolve runs (model keys on `dataset`), say on stderr which
    run each row shows and why, build the comparison."""
    selections, rejected = select_runs(workspace, targets, dataset)
    for selection in selections:
        info(f"{selection.run.model}: {selection.describe()}")
    return build_comparison(selections, rejected, workspace=workspace, lengths=lengths)


def compare_runs(
    runs: Sequence[Run],
    *,
    workspace: Workspace | None = None,
    lengths: bool = False,
    sweeps: Mapping[str, SweepRecord] | None = None,
) -> Comparison:
    """Compare given runs, grouping the runs of one model as seeds (used by reproduce).

    The latest run of each model is shown and paired; the others enter its mean ± std.
    `sweeps`: model -> the sweep that selected its runs' learning rate.
    """
    by_model: dict[str, list[Run]] = {}
    for run in runs:
        by_model.setdefault(run.model, []).append(run)
    selections: list[Selection] = []
    rejected: list[NotComparable] = []
    for model_runs in by_model.values():
        good = [r for r in model_runs if why_not_comparable(r) is None]
        rejected.extend(p for r in model_runs if (p := why_not_comparable(r)) is not None)
        if good:
            shown = max(good, key=lambda r: (r.ledger.created_at, r.run_id))
            swept = (sweeps or {}).get(shown.model)
            selections.append(Selection(shown, tuple(good), swept))
    return build_comparison(selections, rejected, workspace=workspace, lengths=lengths)
