"""`imdb prepare`: read a data set once, split it, tokenize it per tokenizer, cache it."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from imdb_cli import registry
from imdb_cli.commands.common import (
    DataDirOption,
    DatasetOption,
    compact_table,
    dataset_entry,
    handles_errors,
    workspace,
)
from imdb_cli.commands.training_options import TrainOverrides, training_options
from imdb_cli.config import TrainConfig
from imdb_cli.console import out
from imdb_cli.data.prepare import PrepareResult
from imdb_cli.data.prepare import prepare as prepare_data
from imdb_cli.data.sources import DataSource
from imdb_cli.data.split import SPLITS, SplitOptions


@handles_errors
@training_options("prepare")
def prepare(
    *,
    models: Annotated[
        str,
        typer.Option(help="Comma-separated model keys to tokenize for (see `imdb models`)."),
    ] = "bert,modernbert",
    dataset: DatasetOption = None,
    data_dir: DataDirOption = None,
    overrides: TrainOverrides,  # --max-length and --truncation, as `imdb train` has them
    seed: Annotated[
        int | None,
        typer.Option(
            help="Seed of the --limit sample and the split. Default: the data set's "
            "(split.seed in its YAML; 42 for IMDB).",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(help="Use a seeded random sample of N reviews (N >= 10), for quick runs."),
    ] = None,
    keep_duplicates: Annotated[
        bool,
        typer.Option(
            "--keep-duplicates",
            help="Keep repeated review texts, as the original study did "
            "(all copies of a text still go to one split).",
        ),
    ] = False,
) -> None:
    """Read a data set (IMDB unless --dataset), drop duplicate texts, split it (80/10/10 by
    seed for IMDB), tokenize and cache.

    A rerun with the same inputs reuses the cache; models sharing a tokenizer share it.
    """
    keys = registry.parse_model_list(models)
    specs = [registry.load_spec(key) for key in keys]
    entry = dataset_entry(dataset)
    source = DataSource.of(entry, data_dir)
    options = SplitOptions.of(entry.split, seed=seed, limit=limit, keep_duplicates=keep_duplicates)
    # The same options, defaults and checks as `imdb train`'s (TrainConfig's fields).
    tokenization = TrainConfig().with_overrides(**overrides)
    result = prepare_data(
        workspace(), specs, source, options, tokenization.max_length, tokenization.truncation
    )
    out.print(_splits_table(result))
    out.print(_caches_table(result))


def _splits_table(result: PrepareResult) -> Table:
    """Reviews per split and per class (count and share), by label name."""
    manifest = result.split_manifest
    if manifest.get("keep_duplicates"):
        note = "duplicates kept"
    else:
        note = f"{result.duplicates_dropped:,} duplicates dropped"
    status = "reused" if result.split_reused else "new"
    names = list(result.dataset.labels)
    seed = "given splits" if result.dataset.split.given else f"seed {manifest['seed']}"
    title = f"{result.dataset.name} splits ({status}): {seed}, {note}"
    table = compact_table(title)
    table.min_width = min(len(title), 80)  # the title on one line
    table.add_column("split")
    table.add_column("reviews", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    totals = dict.fromkeys(names, 0)
    for split in SPLITS:
        balance = manifest["label_balance"][split]
        for name in names:
            totals[name] += int(balance.get(name, 0))
        table.add_row(split, *_counts(int(manifest["sizes"][split]), balance, names))
    table.add_section()
    table.add_row("all", *_counts(sum(totals.values()), totals, names))
    return table


def _counts(n: int, balance: dict[str, int], names: list[str]) -> list[str]:
    cells = [f"{n:,}"]
    for name in names:
        count = int(balance.get(name, 0))
        cells.append(f"{count:,} ({100 * count / n:.1f}%)" if n else "0")
    return cells


def _caches_table(result: PrepareResult) -> Table:
    first = next(iter(result.caches.values()))
    table = compact_table(
        f"token caches in {result.split_dir.parent}: max length {first.max_length}, "
        f"{first.truncation} truncation"
    )
    table.add_column("models", no_wrap=True)
    table.add_column("cache", overflow="fold")
    table.add_column("status", no_wrap=True)
    table.add_column("at max length", justify="right", no_wrap=True)
    for path, model_keys in result.models_by_cache().items():
        cache = result.caches[model_keys[0]]
        full = cache.manifest.get("full_length_fraction", {})
        sizes = cache.sizes()
        total = sum(sizes.values())
        at_max = sum(float(full.get(s, 0.0)) * n for s, n in sizes.items())
        filled = f"{100 * at_max / total:.0f}%" if full and total else "-"
        status = "reused" if cache.reused else "new"
        table.add_row("\n".join(model_keys), path.name, status, filled)
    return table
