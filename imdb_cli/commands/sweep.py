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
from imdb_cli.commands.training_options import TrainOverrides, training_options
from imdb_cli.console import info, out, verbosity
from imdb_cli.runs.sweeps import SweepRecord, format_rate, parse_rates
from imdb_cli.study import sweep as sweeps
from imdb_cli.study.reproduce import parse_seeds


@handles_errors
@training_options(exclude=("lr", "seed"))
def sweep(
    model: Annotated[str, typer.Argument(help="Model key (see `imdb models`).")],
    lr: Annotated[
        str,
        typer.Option(
            "--lr",
            help="The learning rates to try, comma-separated, like 2e-5,3e-5,5e-5,8e-5.",
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
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bars; only the result.")
    ] = False,
) -> None:
    """Train MODEL once per learning rate (and seed); select the rate on validation.

    Each trial is an ordinary run (runs/MODEL/<sweep-id>-lr<rate>-seed<seed>/),
    trained one after another; the rest of the recipe comes from the model's YAML
    and the options given (any option of `imdb train`).

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
    rates = parse_rates(lr)
    base = spec.training.with_overrides(**overrides)
    chosen_seeds = parse_seeds(seeds) or (base.seed,)
    name = dataset_entry(dataset).name if dataset is not None else None
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
    render(sweeps.train_sweep(space, spec, plan, use_wandb=wandb))


def render(record: SweepRecord) -> None:
    title = f"{record.model}: learning rates, judged on validation accuracy only"
    table = compact_table(title)
    table.expand = True  # the title on one line; the notes take what the figures leave
    table.add_column("learning rate", justify="right", no_wrap=True)
    table.add_column("val acc (mean)", justify="right", no_wrap=True)
    table.add_column("seeds done", justify="right", no_wrap=True)
    table.add_column("", ratio=1)  # selected, or what keeps the rate out
    for rate in record.selection.rates:
        mean = "—" if rate.mean_val_acc is None else f"{rate.mean_val_acc:.4f}"
        note = "selected" if rate.lr == record.selection.lr else "; ".join(rate.problems)
        table.add_row(format_rate(rate.lr), mean, f"{len(rate.val_accs)}/{rate.seeds}", note)
    out.print(table)
    out.print(f"{record.selection.reason}.", highlight=False)
    out.print(f"sweep record: {record.path}", highlight=False, soft_wrap=True)
