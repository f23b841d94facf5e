"""A prepared data cache for the training tests, built once per test session.

`data.prepare` runs once on synthetic, learnable reviews (conftest.synthetic_reviews);
each test gets its own workspace holding a copy of that cache (a few hundred kB).
The fixtures at the end are imported by the training test modules (one definition).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from conftest import synthetic_reviews, write_parquet_imdb

from imdb_cli import data, registry
from imdb_cli.config import TrainConfig
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
        data.prepare(
            Workspace(root),
            [registry.load_spec(TINY)],
            data.DataSource(data_dir=source),
            data.SplitOptions(),
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


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def prepared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepared_workspace_root(tmp_path_factory.mktemp("prepared"))


@pytest.fixture
def prepared(prepared_root: Path, workdir: Path) -> Workspace:
    """The CLI's workspace (conftest `workdir`) with the tiny-bert cache in it."""
    return copy_workspace(prepared_root, workdir)


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    previous = one_thread()
    yield
    torch.set_num_threads(previous)
