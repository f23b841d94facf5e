"""Shared fixtures: a throwaway workspace, small synthetic IMDB folders, the CLI runner.

Everything here is offline. Real IMDB (../shared/data/imdb or $IMDB_DATA_DIR) is used only
through `real_imdb_dir`, which skips when the copy is absent.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner, Result

REPO = Path(__file__).resolve().parents[1]
REAL_IMDB = Path(os.environ.get("IMDB_DATA_DIR") or REPO.parent / "shared" / "data" / "imdb")

Review = tuple[str, int]  # (text, label)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`-m cuda` on a machine without a GPU: skip those tests, saying why, instead of failing."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none here)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


_POSITIVE = ["great", "wonderful", "moving", "brilliant", "superb", "touching", "funny", "charming"]
_NEGATIVE = ["awful", "boring", "dull", "terrible", "weak", "clumsy", "tedious", "bland"]
_NEUTRAL = [
    "the",
    "film",
    "movie",
    "plot",
    "actor",
    "actress",
    "scene",
    "story",
    "director",
    "music",
    "camera",
    "ending",
    "character",
    "dialogue",
    "script",
    "was",
    "is",
    "and",
    "a",
    "of",
    "with",
    "but",
    "it",
    "this",
    "that",
    "very",
    "quite",
]


def synthetic_reviews(n: int, seed: int = 0) -> list[Review]:
    """`n` distinct reviews, half positive, whose label shows in their words (learnable)."""
    rng = np.random.default_rng(seed)
    reviews: list[Review] = []
    for i in range(n):
        label = i % 2
        mood = _POSITIVE if label else _NEGATIVE
        words = rng.choice(_NEUTRAL, size=int(rng.integers(10, 220))).tolist()
        for at in rng.integers(0, len(words), size=4):
            words.insert(int(at), str(rng.choice(mood)))
        reviews.append((f"Review {i}: " + " ".join(words) + ".", label))
    return reviews


def write_parquet_imdb(folder: Path, train: Sequence[Review], test: Sequence[Review]) -> Path:
    """The Hub's layout: folder/plain_text/{train,test}-00000-of-00001.parquet."""
    plain = folder / "plain_text"
    plain.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", train), ("test", test)):
        table = pa.table(
            {
                "text": pa.array([t for t, _ in rows], type=pa.string()),
                "label": pa.array([label for _, label in rows], type=pa.int64()),
            }
        )
        pq.write_table(table, plain / f"{name}-00000-of-00001.parquet")
    return folder


def write_aclimdb(folder: Path, train: Sequence[Review], test: Sequence[Review]) -> Path:
    """The original layout: folder/aclImdb/{train,test}/{neg,pos}/<id>_<rating>.txt.

    Files are named so that sorting by name keeps each split's order (negatives first,
    like the Hub), so the result reads back as the same rows as `write_parquet_imdb`
    when the rows are given negatives first.
    """
    root = folder / "aclImdb"
    for split, rows in (("train", train), ("test", test)):
        for category in ("neg", "pos"):
            (root / split / category).mkdir(parents=True, exist_ok=True)
        for i, (text, label) in enumerate(rows):
            category = "pos" if label else "neg"
            (root / split / category / f"{i:05d}_{8 if label else 2}.txt").write_text(
                text, encoding="utf-8"
            )
    return folder


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty workspace folder, also set as IMDB_WORKDIR; IMDB_DATA_DIR unset."""
    path = tmp_path / "workspace"
    monkeypatch.setenv("IMDB_WORKDIR", str(path))
    monkeypatch.delenv("IMDB_DATA_DIR", raising=False)
    return path


@pytest.fixture
def synthetic_imdb_dir(tmp_path: Path) -> Path:
    """200 distinct synthetic reviews (100 train, 100 test) in the Hub's parquet layout."""
    reviews = synthetic_reviews(200)
    return write_parquet_imdb(tmp_path / "imdb", reviews[:100], reviews[100:])


@pytest.fixture(scope="session")
def real_imdb_dir() -> Path:
    if not (REAL_IMDB / "plain_text").is_dir():
        pytest.skip(f"real IMDB not found at {REAL_IMDB}")
    return REAL_IMDB


@pytest.fixture
def run_cli(workdir: Path) -> Callable[..., Result]:
    """Run `imdb --workdir <workdir> ARGS...` in-process; returns click's Result."""
    from imdb_cli.cli import app

    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(app, ["--workdir", str(workdir), *args], catch_exceptions=False)

    return run
