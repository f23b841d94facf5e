"""`imdb sweep MODEL --lr ...`: one run per learning rate (and seed), chosen on validation."""

from __future__ import annotations

from typing import Annotated

import typer

from imdb_cli import registry
from imdb_cli.commands.common import (
    DatasetOption,
    compact_table,
    dataset_entry,
    handles_errors,
    workspace,
)
from imdb_cli.commands.study_options import (
    NprocOption,
    StorageOption,
    WorkersOption,
    pool_options,
)
from imdb_cli.commands.training_options import TrainOverrides, training_options
from imdb_cli.console import info, out, verbosity
from imdb_cli.errors import ImdbError
from imdb_cli.runs.sweeps import (
    SEARCHED,
    SearchPlan,
    SearchRecord,
    SweepRecord,
    format_rate,
    parse_range,
    parse_rates,
)
from imdb_cli.study import sweep as sweeps
from imdb_cli.study.reproduce import parse_seeds
from imdb_cli.study.workers import SweepJob, run_pool
from imdb_cli.workspace import Workspace


@handles_errors
@training_options(exclude=("lr", "seed"))
def sweep(
    model: Annotated[str, typer.Argument(help="Model key (see `imdb models`).")],
    lr: Annotated[
        str,
        typer.Option(
            "--lr",
            help="The learning rates to try, comma-separated, like 2e-5,3e-5,5e-5,8e-5; "
            "with --search tpe a range LOW:HIGH, like 1e-5:1e-4 (searched on a log scale).",
            show_default=False,
        ),
    ],
    *,
    overrides: TrainOverrides,
    seeds: Annotated[
        str | None,
        typer.Option(
            "--seeds",
            help="Training seeds, like 42,43: each rate is trained once per seed and judged "
            "by its mean validation accuracy. Default: the model's YAML seed.",
            show_default=False,
        ),
    ] = None,
    dataset: DatasetOption = None,
    data_set: Annotated[
        str | None,
        typer.Option(
            "--data",
            help="Prepared data: its fingerprint (a folder name under <workdir>/cache) when "
            "several are prepared; default: the newest of the data set for the model's "
            "tokenizer and length.",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print each trial's `imdb train` command and write the sweep record, but "
            "train nothing: run the commands anywhere (one per GPU, a job array), bring "
            "the run folders back, and `imdb sweep` or `imdb compare` finds them.",
        ),
    ] = False,
    wandb: Annotated[
        bool,
        typer.Option(
            "--wandb/--no-wandb", help="Log every trial to Weights & Biases (default off)."
        ),
    ] = False,
    workers: WorkersOption = None,
    storage: StorageOption = None,
    nproc_per_trial: NprocOption = 1,
    search: Annotated[
        str,
        typer.Option(
            "--search",
            help="grid: every rate with every seed (Optuna's GridSampler with --workers). "
            "tpe: Optuna's TPE sampler draws the settings of --trials runs of one seed from "
            "ranges (--lr LOW:HIGH, --warmup-ratio-range, --weight-decay-range), through "
            "the study storage; the best validation accuracy wins.",
        ),
    ] = "grid",
    trials: Annotated[
        int | None,
        typer.Option("--trials", help="With --search tpe: how many runs.", show_default=False),
    ] = None,
    warmup_range: Annotated[
        str | None,
        typer.Option(
            "--warmup-ratio-range",
            help="With --search tpe: LOW:HIGH of the warmup ratio (warmup needs a schedule: "
            "--scheduler linear or cosine). Default: the --warmup-ratio given or the YAML's.",
            show_default=False,
        ),
    ] = None,
    decay_range: Annotated[
        str | None,
        typer.Option(
            "--weight-decay-range",
            help="With --search tpe: LOW:HIGH of the weight decay. Default: fixed.",
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bars; only the result.")
    ] = False,
) -> None:
    """Train MODEL once per learning rate (and seed); select the rate on validation.

    Each trial is an ordinary run (runs/MODEL/<sweep-id>-lr<rate>-seed<seed>/),
    trained one after another, or N at once with --workers N; the rest of the recipe
    comes from the model's YAML and the options given (any option of `imdb train`).
    The same command with --storage on several machines shares the trials out.

    The rate with the highest mean validation accuracy over the seeds wins; a tie
    goes to the smaller rate; test accuracy is never used. The same command again
    resumes the sweep: finished trials are kept, a killed one continues where it
    stopped. `imdb compare MODEL` then uses the selected rate.

    Example: imdb sweep tiny-bert --lr 1e-4,3e-4,1e-3 --seeds 42,43 --epochs 2
    """
    if quiet:
        verbosity.quiet = True
    space = workspace()
    spec = registry.load_spec(model)
    base = spec.training.with_overrides(**overrides)
    chosen_seeds = parse_seeds(seeds) or (base.seed,)
    pool = pool_options(workers, storage, nproc_per_trial, wandb)  # checked before any work
    name = dataset_entry(dataset).name if dataset is not None else None
    if search == "tpe":
        ranges = search_ranges(lr, warmup_range, decay_range, overrides)
        if trials is None or trials < 1:
            raise ImdbError("--search tpe: give the number of runs, like --trials 20")
        if len(chosen_seeds) != 1 or dry_run:
            raise ImdbError("--search tpe: give one seed (--seeds 42), and no --dry-run")
        found = sweeps.make_plan(space, spec, base, (base.lr,), chosen_seeds, data_set, name)
        searched = SearchPlan(
            spec.key, trials, ranges, chosen_seeds[0], base, found.data_fingerprint
        )
        info(f"search {searched.sweep_id} of {model}: {trials} TPE trial(s)")
        pool = pool or pool_options(1, storage, nproc_per_trial, wandb)  # TPE: through Optuna
        assert pool is not None
        (result,) = run_pool(space, [SweepJob(model, searched)], pool)
        assert isinstance(result, SearchRecord)
        render_search(result)
        return
    if search != "grid":
        raise ImdbError(f"--search {search!r}: give grid or tpe")
    if trials is not None or warmup_range is not None or decay_range is not None:
        raise ImdbError("--trials and the --...-range options go with --search tpe")
    rates = parse_rates(lr)
    plan = sweeps.make_plan(space, spec, base, rates, chosen_seeds, data_set, name)
    info(
        f"sweep {plan.sweep_id} of {model}: {len(rates)} rate(s) x {len(chosen_seeds)} "
        f"seed(s), data {plan.data_fingerprint}"
    )
    if dry_run:
        record = sweeps.plan_only(space, spec, plan)
        for trial in plan.trials():
            out.print(
                str(sweeps.trial_invocation(space, spec, plan, trial)),
                highlight=False,
                soft_wrap=True,
            )
        info(f"sweep record: {record.path}")
        return
    if pool is None:
        render(sweeps.train_sweep(space, spec, plan, use_wandb=wandb), space)
        return
    commands = {
        t.run_name: str(sweeps.trial_invocation(space, spec, plan, t)) for t in plan.trials()
    }
    (done,) = run_pool(space, [SweepJob(model, plan, commands)], pool)
    assert isinstance(done, SweepRecord)
    render(done, space)


def search_ranges(
    lr: str, warmup: str | None, decay: str | None, overrides: TrainOverrides
) -> tuple[tuple[str, float, float], ...]:
    """The searched settings and their ranges; a setting both fixed and searched is refused."""
    given = {"lr": lr, "warmup_ratio": warmup, "weight_decay": decay}
    ranges = []
    for setting, text in given.items():
        if text is None:
            continue
        if setting in overrides:
            flag = SEARCHED[setting]
            raise ImdbError(f"{flag} and {flag}-range: give one (fixed, or searched)")
        ranges.append((setting, *parse_range(text, setting)))
    return tuple(ranges)


def render_search(record: SearchRecord) -> None:
    names = [name for name, _, _ in record.plan.ranges]
    table = compact_table(f"{record.plan.model}: TPE search, judged on validation accuracy only")
    table.expand = True
    table.add_column("trial", justify="right", no_wrap=True)
    for name in names:
        table.add_column(name.replace("_", " "), justify="right", no_wrap=True)
    table.add_column("val acc", justify="right", no_wrap=True)
    table.add_column("", ratio=1)
    for result in record.results:
        values = [f"{result.params[n]:.3g}" if n in result.params else "—" for n in names]
        acc = "—" if result.best_val_acc is None else f"{result.best_val_acc:.4f}"
        chosen = record.selected is not None and result.slot == record.selected.slot
        note = "selected" if chosen else ("" if result.status == "completed" else result.status)
        table.add_row(str(result.slot + 1), *values, acc, note)
    out.print(table)
    out.print(f"{record.reason}.", highlight=False)
    out.print(f"search record: {record.path}", highlight=False, soft_wrap=True)


def render(record: SweepRecord, space: Workspace) -> None:
    from imdb_cli.compare.comparison import SweepSummary

    summary = None
    if record.selection.lr is not None:
        chosen = record.runs_of(space, record.selection.lr)
        epochs = chosen[0].ledger.epochs if chosen else []
        summary = SweepSummary.of(record, epochs[-1].val_samples if epochs else None)
    shown = {r.lr: r for r in summary.rates} if summary is not None else {}
    title = f"{record.model}: learning rates, judged on validation accuracy only"
    table = compact_table(title)
    table.expand = True  # the title on one line; the notes take what the figures leave
    table.add_column("learning rate", justify="right", no_wrap=True)
    table.add_column("val acc (mean,\n95% CI)", justify="right", no_wrap=True)
    table.add_column("seeds done", justify="right", no_wrap=True)
    table.add_column("", ratio=1)  # selected, or what keeps the rate out
    for rate in record.selection.rates:
        mean = "—" if rate.mean_val_acc is None else f"{rate.mean_val_acc:.4f}"
        same = shown.get(rate.lr)
        if same is not None and same.low is not None and same.high is not None:
            mean += f"\n({same.low:.3f}–{same.high:.3f})"  # its 95% interval, under it
        note = "selected" if rate.lr == record.selection.lr else "; ".join(rate.problems)
        if same is not None and same.within_noise:
            note = "; ".join(filter(None, ["within noise of the selected", note]))
        table.add_row(format_rate(rate.lr), mean, f"{len(rate.val_accs)}/{rate.seeds}", note)
    out.print(table)
    out.print(f"{record.selection.reason}.", highlight=False)
    if summary is not None:
        out.print(f"{summary.certainty().capitalize()}.", highlight=False)
    out.print(f"sweep record: {record.path}", highlight=False, soft_wrap=True)
