"""IMDB folders for the tests: synthetic, learnable reviews written in the Hub's parquet
layout or the aclImdb layout; where the repository and the real IMDB copy are."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
REAL_IMDB = Path(os.environ.get("IMDB_DATA_DIR") or REPO.parent / "shared" / "data" / "imdb")

Review = tuple[str, int]  # (text, label)


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
