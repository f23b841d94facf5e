"""The whole study in one call: prepare, train every model (per seed), compare, t-SNE,
attention, and `<workdir>/report.md` with `report.html` beside it.

Every step is one core function (the same ones the commands call), the report holds the
exact command of each step, and a step that cannot run says so in the report instead of
drawing something.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imdb_cli import __version__, registry
from imdb_cli.compare import formats, study_report
from imdb_cli.compare.comparison import Comparison, compare_runs
from imdb_cli.config import Invocation, ModelSpec, TrainConfig, train_invocation
from imdb_cli.console import info, warn
from imdb_cli.data.entry import DEFAULT_DATASET, DatasetEntry, configs_dir, load_dataset_entry
from imdb_cli.data.prepare import prepare
from imdb_cli.data.sources import DataSource
from imdb_cli.data.split import SplitOptions
from imdb_cli.data.tokenized import TokenizedCache
from imdb_cli.errors import ImdbError
from imdb_cli.runs.run import Run, list_runs
from imdb_cli.runs.sweeps import SweepPlan, SweepRecord
from imdb_cli.study.storage import StorageChoice
from imdb_cli.study.sweep import train_sweep, trial_invocation
from imdb_cli.study.workers import PoolOptions, SweepJob, run_pool
from imdb_cli.workspace import Workspace

if TYPE_CHECKING:  # torch and sklearn: only when the analyses run
    from imdb_cli.analysis.attention import SavedAttention
    from imdb_cli.analysis.embeddings import TsneResult

REPORT_NAME = "report.md"
FIGURES_DIR = "report-figures"  # the comparison's PNGs, linked from report.md
DEFAULT_MODELS = "bert,modernbert"
TSNE_SAMPLES = 1000
ATTENTION_REVIEWS = 1
_VERSIONED = ("torch", "transformers", "datasets", "numpy", "scikit-learn", "typer", "rich")


@dataclass(frozen=True)
class StudyOptions:
    """What `imdb reproduce` was asked for; None means each model's YAML value."""

    models: tuple[str, ...]
    data_dir: Path | None = None
    dataset: str | None = None  # a dataset entry's name or YAML path; None: IMDB
    limit: int | None = None
    split_seed: int | None = None  # None: the data set's own
    seeds: tuple[int, ...] | None = None  # training seeds
    # Learning rates to sweep per model (selected on validation); None: each YAML's rate.
    rates: tuple[float, ...] | None = None
    # Training options given (TrainConfig field -> value); the rest come from each YAML.
    overrides: dict[str, Any] = field(default_factory=dict)
    tsne_samples: int = TSNE_SAMPLES
    attention_reviews: int = ATTENTION_REVIEWS
    analysis: bool = True
    # Trials side by side through an Optuna study (`--workers`, `--storage`); None: one
    # after another in this process.
    pool: PoolOptions | None = None

    def check(self) -> None:
        if not self.models:
            raise ImdbError("--models: give at least one model key")
        if self.seeds is not None and not self.seeds:
            raise ImdbError("--seeds: give at least one seed, like 42,43")
        if self.seeds is not None and len(set(self.seeds)) != len(self.seeds):
            raise ImdbError(f"--seeds: a seed is repeated ({','.join(map(str, self.seeds))})")
        if self.tsne_samples < 5:
            raise ImdbError(f"--tsne-samples must be at least 5 (got {self.tsne_samples})")
        if self.attention_reviews < 0:
            raise ImdbError(f"--attention-reviews must not be negative ({self.attention_reviews})")


def parse_seeds(text: str | None) -> tuple[int, ...] | None:
    """`42,43` -> (42, 43); errors name --seeds."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        seeds = tuple(int(p) for p in parts)
    except ValueError as exc:
        raise ImdbError(f"--seeds {text!r}: give whole numbers separated by commas") from exc
    if not seeds or any(s < 0 for s in seeds):
        raise ImdbError(f"--seeds {text!r}: give non-negative whole numbers, like 42,43")
    return seeds


@dataclass
class Plan:
    """The resolved study: one training config per (model, seed), checked before any work."""

    specs: list[ModelSpec]
    configs: dict[str, list[TrainConfig]]  # model key -> one config per seed

    def trainings(self) -> int:
        return sum(len(c) for c in self.configs.values())


def make_plan(options: StudyOptions) -> Plan:
    options.check()
    specs = [registry.load_spec(key) for key in options.models]
    configs: dict[str, list[TrainConfig]] = {}
    for spec in specs:
        seeds = options.seeds or (spec.training.seed,)
        configs[spec.key] = [
            spec.training.with_overrides(**{**options.overrides, "seed": seed}) for seed in seeds
        ]
    return Plan(specs, configs)


@dataclass
class StudyResult:
    report: study_report.StudyReport
    path: Path  # report.md

    @property
    def complete(self) -> bool:
        return not self.report.failures


def run_study(workspace: Workspace, options: StudyOptions) -> StudyResult:
    """Every step of the study; a failed training or analysis is reported, not hidden."""
    started = time.perf_counter()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    plan = make_plan(options)
    entry = load_dataset_entry(options.dataset)
    source = DataSource.of(entry, options.data_dir)
    split_options = SplitOptions.of(entry.split, seed=options.split_seed, limit=options.limit)
    study = study_report.StudyReport(
        workdir=workspace.root,
        command=reproduce_invocation(workspace, options, source),
        started_at=started_at,
        versions=versions(),
        models=list(options.models),
    )
    names = ["prepare", "train", "compare", *(["t-SNE", "attention"] if options.analysis else [])]
    names.append("report")
    steps = iter(enumerate(names, start=1))

    def announce(what: str = "") -> None:
        number, name = next(steps)
        info(f"[bold]step {number}/{len(names)}: {name}[/bold]{f' ({what})' if what else ''}")

    announce(source.describe())
    caches = _prepare(workspace, plan, source, split_options, options, study)

    announce(f"{plan.trainings()} run(s)")
    if options.rates or options.pool is not None:
        runs, swept = _sweep_all(workspace, plan, caches, options, study)
    else:
        runs, swept = _train_all(workspace, plan, caches, entry, study), {}
    announce(f"{len(runs)} run(s)")
    if runs:
        study.comparison = compare_runs(runs, workspace=workspace, lengths=True, sweeps=swept)
        study.figures = _comparison_figures(workspace, study.comparison, study)
        shown = [Path(row.run_path) for row in study.comparison.rows]
        study.steps.append(
            _imdb(
                workspace,
                "compare",
                *[_run_ref(workspace, p) for p in shown],
                fmt="markdown",
                plot=_figures_dir(workspace),
            )
        )
    tsne: TsneResult | None = None
    attention: list[SavedAttention] = []
    if options.analysis:
        shown_runs = _shown_runs(study, runs)
        announce()
        tsne_step, tsne = _tsne(workspace, shown_runs, options, study)
        study.analyses.append(tsne_step)
        announce()
        attention_step, attention = _attention(workspace, shown_runs, options, study, tsne)
        study.analyses.append(attention_step)
        study.steps += [step.command for step in study.analyses if step.command]
    path = workspace.root / REPORT_NAME
    announce(str(path))
    study.seconds = time.perf_counter() - started
    if study.comparison is not None:
        study.page = _write_page(workspace, study, tsne, attention)
    formats.write_text(path, study_report.render_study_report(study))
    return StudyResult(study, path)


def _write_page(
    workspace: Workspace,
    study: study_report.StudyReport,
    tsne: TsneResult | None,
    attention: list[SavedAttention],
) -> Path | None:
    """report.html beside report.md, from the analyses just computed (in memory)."""
    from imdb_cli.compare import html

    try:
        html.require_libraries()
    except ImdbError as exc:
        warn(f"{html.REPORT_NAME} not written: {exc.message}")
        return None
    path = workspace.root / html.REPORT_NAME
    size = html.write_html(path, html.for_study(workspace, study, tsne, attention))
    info(f"wrote {path} ({size / 1e6:.1f} MB)")
    return path


def _prepare(
    workspace: Workspace,
    plan: Plan,
    source: DataSource,
    split_options: SplitOptions,
    options: StudyOptions,
    study: study_report.StudyReport,
) -> dict[tuple[str, int, str], TokenizedCache]:
    """Tokenized caches by (model key, max length, truncation): one prepare per distinct
    (length, truncation)."""
    shapes: dict[tuple[int, str], list[ModelSpec]] = {}
    for spec in plan.specs:
        for shape in sorted({(c.max_length, c.truncation) for c in plan.configs[spec.key]}):
            shapes.setdefault(shape, []).append(spec)
    caches: dict[tuple[str, int, str], TokenizedCache] = {}
    for (length, truncation), specs in shapes.items():
        study.steps.append(
            prepare_invocation(workspace, specs, length, truncation, source, split_options, options)
        )
        result = prepare(workspace, specs, source, split_options, length, truncation)
        for key, cache in result.caches.items():
            caches[(key, length, truncation)] = cache
        study.data = {
            "dataset": result.dataset.name,
            "labels": list(result.dataset.labels),
            "source": result.source,
            "data_fingerprint": result.data_fingerprint,
            "split_seed": split_options.seed,
            "limit": split_options.limit,
            "sizes": dict(result.split_manifest.get("sizes", {})),
            "duplicates_dropped": result.duplicates_dropped,
            "split_dir": str(result.split_dir),
        }
    return caches


def _train_all(
    workspace: Workspace,
    plan: Plan,
    caches: dict[tuple[str, int, str], TokenizedCache],
    entry: DatasetEntry,
    study: study_report.StudyReport,
) -> list[Run]:
    from imdb_cli.training.loop import train  # torch: seconds that `--help` need not wait

    runs: list[Run] = []
    for spec in plan.specs:
        for config in plan.configs[spec.key]:
            cache = caches[(spec.key, config.max_length, config.truncation)]
            study.steps.append(
                train_invocation(spec, config, workspace.root, dataset=dataset_option(entry))
            )
            done = _done_before(workspace, spec.key, config, cache)
            if done is not None:
                info(
                    f"{spec.key} (seed {config.seed}): done before with these settings as "
                    f"{done.model}/{done.run_id}; not trained again"
                )
                runs.append(done)
                study.devices.setdefault(spec.key, done.ledger.environment.device or "?")
                continue
            info(f"training {spec.key} (seed {config.seed}, {config.epochs} epoch(s))")
            try:
                run = train(workspace, spec, config, cache=cache, dataset=entry)
            except ImdbError as exc:
                message = f"training {spec.key} (seed {config.seed}) failed: {exc.message}"
                warn(message)
                study.failures.append(message)
                continue
            if run.ledger.data.data_fingerprint != cache.data_fingerprint:
                raise ImdbError(
                    f"run {run.describe()} was trained on data {run.ledger.data.cache}, "
                    f"not on the prepared {cache.path}"
                )
            runs.append(run)
            study.devices.setdefault(spec.key, run.ledger.environment.device or "?")
    return runs


def _done_before(
    workspace: Workspace, model: str, config: TrainConfig, cache: TokenizedCache
) -> Run | None:
    """The newest completed, tested run of `model` with exactly `config` on `cache`'s data.
    Training is seeded, so it is the run this study would make again: `reproduce --seeds`
    adds only the seeds that are missing, as a sweep keeps its finished trials."""
    for run in reversed(list_runs(workspace, model)):
        ledger = run.ledger
        if (
            ledger.status == "completed"
            and ledger.test is not None
            and ledger.config == config
            and ledger.data.data_fingerprint == cache.data_fingerprint
            and ledger.data.tokenizer_key == cache.tokenizer_key
        ):
            return run
    return None


def _sweep_all(
    workspace: Workspace,
    plan: Plan,
    caches: dict[tuple[str, int, str], TokenizedCache],
    options: StudyOptions,
    study: study_report.StudyReport,
) -> tuple[list[Run], dict[str, SweepRecord]]:
    """`--lr`: a sweep per model over the rates (and seeds); the selected rate's runs.
    With workers, every model's trials go to one pool (the YAML's rate when no --lr), so
    no worker waits for one model's last trial while another model's are left."""
    plans: list[tuple[ModelSpec, SweepPlan, TokenizedCache]] = []
    for spec in plan.specs:
        configs = plan.configs[spec.key]
        base = configs[0]
        cache = caches[(spec.key, base.max_length, base.truncation)]
        seeds = tuple(c.seed for c in configs)
        rates = options.rates or (base.lr,)
        plans.append((spec, SweepPlan(spec.key, rates, seeds, base, cache.data_fingerprint), cache))
        study.steps.append(sweep_invocation(workspace, spec.key, options, rates))
    records: list[SweepRecord] = []
    if options.pool is not None:
        jobs = [
            SweepJob(
                spec.key,
                sweep_plan,
                {
                    t.run_name: str(trial_invocation(workspace, spec, sweep_plan, t))
                    for t in sweep_plan.trials()
                },
            )
            for spec, sweep_plan, _ in plans
        ]
        trials = sum(len(p.trials()) for _, p, _ in plans)
        info(f"{trials} trial(s) of {len(plans)} model(s), {options.pool.workers} at once here")
        pooled = run_pool(workspace, jobs, options.pool)
        records = [r for r in pooled if isinstance(r, SweepRecord)]
    else:
        for spec, sweep_plan, cache in plans:
            info(
                f"sweeping {spec.key}: {len(sweep_plan.rates)} rate(s) x "
                f"{len(sweep_plan.seeds)} seed(s)"
            )
            records.append(train_sweep(workspace, spec, sweep_plan, cache=cache))
    runs: list[Run] = []
    swept: dict[str, SweepRecord] = {}
    for (spec, _, _), record in zip(plans, records, strict=True):
        if record.selection.lr is None:
            message = f"the sweep of {spec.key} selected no rate: {record.selection.reason}"
            warn(message)
            study.failures.append(message)
            continue
        failed = [t for t in record.trials if t.status == "failed"]
        study.failures += [
            f"{spec.key} at lr {t.lr:g} (seed {t.seed}) failed: {t.error}" for t in failed
        ]
        if options.rates:  # a grid of one rate (workers without --lr) selects nothing
            swept[spec.key] = record
        chosen = record.runs_of(workspace, record.selection.lr)
        runs += chosen
        for run in chosen:
            study.devices.setdefault(spec.key, run.ledger.environment.device or "?")
    return runs, swept


def pool_options_of(pool: PoolOptions | None) -> dict[str, Any]:
    """`--workers N` and the rest, as given (a password in --storage hidden)."""
    if pool is None:
        return {}
    options: dict[str, Any] = {"workers": pool.workers}
    if pool.storage is not None:
        options["storage"] = StorageChoice.parse(pool.storage, Workspace(Path("."))).describe()
    if pool.nproc_per_trial != 1:
        options["nproc_per_trial"] = pool.nproc_per_trial
    return options


def _figures_dir(workspace: Workspace) -> Path:
    return workspace.root / FIGURES_DIR


def _comparison_figures(
    workspace: Workspace, comparison: Comparison, study: study_report.StudyReport
) -> dict[str, Path]:
    """The comparison's PNGs beside report.md; a figure that fails is a failure, not hidden."""
    from imdb_cli.compare.figures import write_figures

    try:
        return write_figures(comparison, _figures_dir(workspace))
    except ImdbError as exc:
        study.failures.append(f"figures failed: {exc.message}")
        return {}


def _shown_runs(study: study_report.StudyReport, runs: Sequence[Run]) -> list[Run]:
    """The run each row of the table shows: the analyses explain those."""
    if study.comparison is None:
        return []
    by_path = {str(run.path): run for run in runs}
    return [by_path[row.run_path] for row in study.comparison.rows if row.run_path in by_path]


def _tsne(
    workspace: Workspace,
    runs: Sequence[Run],
    options: StudyOptions,
    study: study_report.StudyReport,
) -> tuple[study_report.AnalysisStep, TsneResult | None]:
    name = "t-SNE"
    if not runs:
        return study_report.AnalysisStep(name, skipped="no completed run to embed"), None
    from imdb_cli.analysis.embeddings import (  # torch, sklearn
        TsneOptions,
        compute_tsne,
        default_perplexity,
    )

    test_size = min(run.ledger.data.sizes.get("test", 0) or 10**9 for run in runs)
    n_samples = min(options.tsne_samples, test_size)
    perplexity = default_perplexity(n_samples)
    refs = [_run_ref(workspace, run.path) for run in runs]
    command = _imdb(
        workspace,
        "tsne",
        *refs,
        n_samples=n_samples,
        perplexity=perplexity,
        device=options.overrides.get("device"),
    )
    try:
        tsne_options = TsneOptions(
            n_samples=n_samples,
            perplexity=perplexity,
            device=options.overrides.get("device", "auto"),
        )
        result = compute_tsne(workspace, list(runs), tsne_options)
    except ImdbError as exc:
        study.failures.append(f"t-SNE failed: {exc.message}")
        return study_report.AnalysisStep(name, command=command, failed=exc.message), None
    pngs = [p for p in result.files if p.suffix == ".png"]
    # The side-by-side figure holds every model's map; the single maps become links.
    side_by_side = [p for p in pngs if p.stem.endswith("side_by_side")]
    shown = side_by_side or pngs
    others = [p for p in result.files if p not in shown]
    summary = (
        f"{len(result.sample.review_ids)} {result.sample.split} reviews, perplexity "
        f"{perplexity:g}; {len(result.disagreements)} disagreements between the models"
    )
    step = study_report.AnalysisStep(
        name, command=command, images=shown, files=others, summary=summary
    )
    return step, result


def _attention(
    workspace: Workspace,
    runs: Sequence[Run],
    options: StudyOptions,
    study: study_report.StudyReport,
    tsne: TsneResult | None,
) -> tuple[study_report.AnalysisStep, list[SavedAttention]]:
    """Attention maps of the reviews the t-SNE step found (passed here, not read back from
    analysis/tsne/latest, which another study in the workspace may have moved on)."""
    name = "attention"
    if not runs:
        return study_report.AnalysisStep(name, skipped="no completed run to explain"), []
    if tsne is None:
        return study_report.AnalysisStep(name, skipped="no t-SNE result to take reviews from"), []
    if options.attention_reviews == 0:
        return study_report.AnalysisStep(name, skipped="--attention-reviews 0"), []
    from imdb_cli.analysis.attention import LayerSelection, ReviewInput, explain
    from imdb_cli.analysis.embeddings import reviews_of

    count = options.attention_reviews
    models = ",".join(_run_ref(workspace, run.path) for run in runs)
    command = _imdb(workspace, "attention", from_errors=count, models=models)
    try:
        listed = reviews_of(tsne, count)
        reviews = [
            ReviewInput(
                text=r.text, name=f"review-{r.review_id}", review_id=r.review_id, label=r.label
            )
            for r in listed
        ]
        _, saved = explain(workspace, list(runs), reviews, LayerSelection.parse("last", "mean"))
    except ImdbError as exc:
        study.failures.append(f"attention failed: {exc.message}")
        return study_report.AnalysisStep(name, command=command, failed=exc.message), []
    images = [p for item in saved for p in item.files if p.suffix == ".png"]
    files = [p for item in saved for p in item.files if p.suffix != ".png"]
    described = []
    for item in saved:
        result = item.result
        truth = "" if item.review.label is None else f", label {result.classes[item.review.label]}"
        described.append(f"{result.model} on {item.review.name}: {result.prediction}{truth}")
    summary = "reviews from the t-SNE boundary samples (disagreements first): " + "; ".join(
        described
    )
    step = study_report.AnalysisStep(
        name, command=command, images=images, files=files, summary=summary
    )
    return step, saved


# --------------------------------------------------------------------------- commands


def _imdb(workspace: Workspace, command: str, *arguments: str, **options: Any) -> Invocation:
    """`imdb --workdir W COMMAND ARGUMENTS OPTIONS` (options that are None are left out)."""
    given = tuple((name, value) for name, value in options.items() if value is not None)
    return Invocation(command, tuple(arguments), given, workspace.root)


def _listed(values: Sequence[Any], form: str = "{}") -> str:
    """Values as a comma-separated option value (`--models a,b`, `--lr 2e-05,5e-05`)."""
    return ",".join(form.format(value) for value in values)


def _run_ref(workspace: Workspace, path: Path) -> str:
    """`model/run-id` when the run lives in this workspace (what the commands accept)."""
    try:
        return path.resolve().relative_to(workspace.runs.resolve()).as_posix()
    except ValueError:
        return str(path)


def dataset_option(entry: DatasetEntry) -> str | None:
    """`--dataset`'s value for a data set other than the default: its name when it is in
    dataset_configs/, else its YAML's path."""
    if entry.name == DEFAULT_DATASET:
        return None
    in_configs = entry.path.resolve().parent == configs_dir().resolve()
    return entry.name if in_configs else str(entry.path)


def _source_options(options: StudyOptions, source: DataSource | None = None) -> dict[str, Any]:
    data_dir = options.data_dir
    if data_dir is None and source is not None and source.local_copy is not None:
        data_dir = source.local_copy  # from the data set's variable ($IMDB_DATA_DIR): made explicit
    return {"dataset": options.dataset, "data_dir": data_dir}


def reproduce_invocation(
    workspace: Workspace, options: StudyOptions, source: DataSource | None = None
) -> Invocation:
    """The command as run, with a local copy that came from a variable ($IMDB_DATA_DIR)
    shown in front of it."""
    invocation = _imdb(
        workspace,
        "reproduce",
        models=_listed(options.models),
        dataset=options.dataset,
        data_dir=options.data_dir,
        limit=options.limit,
        split_seed=options.split_seed,
        seeds=_listed(options.seeds) if options.seeds is not None else None,
        lr=_listed(options.rates, "{:g}") if options.rates is not None else None,
        **options.overrides,
        tsne_samples=options.tsne_samples if options.tsne_samples != TSNE_SAMPLES else None,
        attention_reviews=(
            options.attention_reviews if options.attention_reviews != ATTENTION_REVIEWS else None
        ),
        analysis=None if options.analysis else False,
        **pool_options_of(options.pool),
    )
    if options.data_dir is None and source is not None and source.local_copy is not None:
        variable = ((source.origin, str(source.local_copy)),)
        invocation = replace(invocation, environment=variable)
    return invocation


def prepare_invocation(
    workspace: Workspace,
    specs: Sequence[ModelSpec],
    max_length: int,
    truncation: str,
    source: DataSource,
    split_options: SplitOptions,
    options: StudyOptions,
) -> Invocation:
    return _imdb(
        workspace,
        "prepare",
        models=_listed([s.key for s in specs]),
        **_source_options(options, source),
        max_length=max_length,
        seed=split_options.seed,
        truncation=truncation if truncation != "head" else None,
        limit=options.limit,
    )


def sweep_invocation(
    workspace: Workspace, model: str, options: StudyOptions, rates: Sequence[float]
) -> Invocation:
    """The `imdb sweep` that trains (and selects) one model's rate as the study did."""
    return _imdb(
        workspace,
        "sweep",
        model,
        lr=_listed(rates, "{:g}"),
        seeds=_listed(options.seeds) if options.seeds is not None else None,
        **options.overrides,
        **pool_options_of(options.pool),
    )


def versions() -> dict[str, str]:
    found = {"imdb": __version__, "python": platform.python_version()}
    for name in _VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    found["platform"] = platform.platform()
    found["cpu cores"] = str(os.cpu_count())
    return found
