"""A prepared data cache for the training tests, built once per test session.

`prepare` runs once on synthetic, learnable reviews (data_support.synthetic_reviews);
each test gets its own workspace holding a copy of that cache (a few hundred kB) through
the `prepared_root` / `prepared` fixtures of conftest.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from data_support import imdb_source, synthetic_reviews, write_parquet_imdb

from imdb_cli import registry
from imdb_cli.config import TrainConfig
from imdb_cli.data.prepare import prepare
from imdb_cli.data.split import SplitOptions
from imdb_cli.workspace import Workspace

TINY = "tiny-bert"
REVIEWS = 600  # 480 train / 60 val / 60 test
_prepared: dict[str, Path] = {}
DEFAULT_THREADS = torch.get_num_threads()  # torch's own choice, before any test pins it


def prepared_workspace_root(base: Path) -> Path:
    """A workspace whose cache holds tiny-bert's (= minilm's) tokens of REVIEWS reviews."""
    if "root" not in _prepared:
        reviews = synthetic_reviews(REVIEWS, seed=1)
        source = write_parquet_imdb(base / "imdb", reviews[: REVIEWS // 2], reviews[REVIEWS // 2 :])
        root = base / "workspace"
        prepare(
            Workspace(root),
            [registry.load_spec(TINY)],
            imdb_source(source),
            SplitOptions(),
            max_length=128,
        )
        _prepared["root"] = root
    return _prepared["root"]


def copy_workspace(prepared_root: Path, target: Path) -> Workspace:
    shutil.copytree(prepared_root / "cache", target / "cache")
    return Workspace(target)


def tiny_config(**overrides: object) -> TrainConfig:
    """tiny-bert's YAML settings on the CPU, with small test-sized overrides."""
    base = registry.load_spec(TINY).training
    return base.with_overrides(**{"device": "cpu", **overrides})


def one_thread() -> int:
    """Pin torch to one thread; returns the previous count to restore.

    Two engineers' test suites share this 2-core machine; OpenMP with two threads under
    contention is many times slower than one, and one thread is also bit-for-bit repeatable.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    return previous


def epochs_done(run_dir: Path) -> int:
    """Epochs a run's ledger holds now (0 while it has none, or is being rewritten)."""
    try:
        return len(json.loads((run_dir / "ledger.json").read_text())["epochs"])
    except (OSError, ValueError, KeyError):
        return 0
