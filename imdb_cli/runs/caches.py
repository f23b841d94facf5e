"""The data a run was trained on: its tokenized cache found again, and how to make it again.

A run's ledger names its cache folder and the data fingerprint; the folder is looked for
where it was and, should the workspace have moved, under this workspace, and is only taken
when its fingerprint is the run's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imdb_cli.config import Invocation
from imdb_cli.data.entry import DEFAULT_DATASET
from imdb_cli.data.tokenized import TokenizedCache, open_cache
from imdb_cli.errors import ImdbError
from imdb_cli.runs.ledger import Ledger
from imdb_cli.workspace import Workspace


def cache_of_run(workspace: Workspace, ledger: Ledger) -> TokenizedCache:
    """The cache a run was trained on (its ledger's data section), checked by fingerprint."""
    fingerprint = ledger.data.data_fingerprint
    path = Path(ledger.data.cache)
    # The workspace may have moved: look for the same entry under this workspace too.
    for candidate in (path, workspace.cache / path.parent.name / path.name):
        cache = open_cache(candidate)
        if cache is not None and cache.data_fingerprint == fingerprint:
            return cache
    raise ImdbError(
        f"run {ledger.model}/{ledger.run_id}: its data cache {path} is gone; recreate it with "
        f"`{prepare_invocation(ledger)}`"
    )


def prepare_invocation(ledger: Ledger) -> Invocation:
    """The `imdb prepare` that makes the cache a run was trained on again (the same reviews,
    split and tokens), from its ledger."""
    data = ledger.data
    options: list[tuple[str, Any]] = [
        ("models", ledger.model),
        ("max_length", data.tokenization.max_length),
        ("truncation", data.tokenization.truncation),
        ("seed", data.split_seed),
    ]
    if data.limit is not None:
        options.append(("limit", data.limit))
    if data.keep_duplicates:
        options.append(("keep_duplicates", True))
    if data.dataset != DEFAULT_DATASET:
        options.append(("dataset", data.dataset))
    folder = local_copy(ledger)
    if folder is not None:
        options.append(("data_dir", folder))
    return Invocation("prepare", options=tuple(options))


def local_copy(ledger: Ledger) -> Path | None:
    """The `--data-dir` a run's reviews were read from (a local parquet or aclImdb copy),
    None when they came from the Hub or a data set's own files."""
    kind, _, where = (ledger.data.source or "").partition(" ")
    if kind not in ("parquet", "aclImdb") or not where:
        return None
    folder = Path(where)
    return folder.parent if folder.name == "aclImdb" else folder
