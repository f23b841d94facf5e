"""`imdb prepare`: read IMDB once, split it, tokenize it per tokenizer, cache it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from imdb_cli import registry
from imdb_cli.commands.common import compact_table, handles_errors, workspace
from imdb_cli.console import out
from imdb_cli.data.prepare import PrepareResult
from imdb_cli.data.prepare import prepare as prepare_data
from imdb_cli.data.sources import DATA_DIR_ENV, DEFAULT_DATASET, DataSource
from imdb_cli.data.split import SPLITS, SplitOptions


@handles_errors
def prepare(
    models: Annotated[
        str,
        typer.Option(help="Comma-separated model keys to tokenize for (see `imdb models`)."),
    ] = "bert,modernbert",
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help=(
                "Local IMDB folder: the Hub's parquet layout (plain_text/*.parquet) or "
                f"aclImdb/{{train,test}}/{{pos,neg}}/*.txt. Default: ${DATA_DIR_ENV}, "
                "else the Hub."
            ),
            show_default=False,
        ),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            help=f"Hugging Face dataset id to download. [default: {DEFAULT_DATASET}]",
            show_default=False,
        ),
    ] = None,
    max_length: Annotated[
        int, typer.Option(help="Tokens per review, special tokens included.")
    ] = 128,
    truncation: Annotated[
        str,
        typer.Option(
            help="Which tokens of a long review to keep: head, tail or head+tail "
            "(first quarter + end, Sun et al. 2019)."
        ),
    ] = "head",
    seed: Annotated[int, typer.Option(help="Seed of the --limit sample and the split.")] = 42,
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
    """Read IMDB, drop duplicate texts, split 80/10/10 by seed, tokenize and cache.

    A rerun with the same inputs reuses the cache; models sharing a tokenizer share it.
    """
    keys = registry.parse_model_list(models)
    specs = [registry.load_spec(key) for key in keys]
    source = DataSource.from_options(data_dir, dataset)
    options = SplitOptions(seed=seed, limit=limit, keep_duplicates=keep_duplicates)
    result = prepare_data(workspace(), specs, source, options, max_length, truncation)
    out.print(_splits_table(result))
    out.print(_caches_table(result))


def _splits_table(result: PrepareResult) -> Table:
    manifest = result.split_manifest
    if manifest.get("keep_duplicates"):
        note = "duplicates kept"
    else:
        note = f"{result.duplicates_dropped:,} duplicates dropped"
    status = "reused" if result.split_reused else "new"
    table = Table(title=f"IMDB splits ({status}): seed {manifest['seed']}, {note}")
    for column in ("split", "reviews", "negative", "positive", "% positive"):
        table.add_column(column, justify="left" if column == "split" else "right")
    total = negative = positive = 0
    for split in SPLITS:
        balance = manifest["label_balance"][split]
        n = int(manifest["sizes"][split])
        total += n
        negative += int(balance["negative"])
        positive += int(balance["positive"])
        table.add_row(split, *_counts(n, balance["negative"], balance["positive"]))
    table.add_section()
    table.add_row("all", *_counts(total, negative, positive))
    return table


def _counts(n: int, negative: int, positive: int) -> tuple[str, str, str, str]:
    share = f"{100 * positive / n:.1f}" if n else "-"
    return f"{n:,}", f"{negative:,}", f"{positive:,}", share


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
