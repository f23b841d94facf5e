"""IMDB folders for the tests: synthetic, learnable reviews written in the Hub's parquet
layout or the aclImdb layout; where the repository and the real IMDB copy are."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from imdb_cli.data.entry import load_dataset_entry
from imdb_cli.data.sources import DataSource

REPO = Path(__file__).resolve().parents[1]
REAL_IMDB = Path(os.environ.get("IMDB_DATA_DIR") or REPO.parent / "shared" / "data" / "imdb")

Review = tuple[str, int]  # (text, label)


def imdb_source(folder: Path) -> DataSource:
    """The IMDB entry read from a local copy at `folder` (what --data-dir gives)."""
    return DataSource.of(load_dataset_entry(None), folder)


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


# The three-way data set of the README's example (tests generate it as CSV files).
THREE_LABELS = ("negative", "neutral", "positive")
_MIXED = ["average", "okay", "passable", "middling", "decent", "uneven", "ordinary", "so-so"]
# dataset_configs' example of a user's own data set, exactly as the README shows it.
MY_REVIEWS_YAML = """\
# my_reviews.yaml: three-way sentiment from local CSV files
name: my-reviews
source: my_reviews              # a folder of parquet/csv/jsonl files, one file, or a Hub id; relative to this YAML
text: review                    # the text column
label: sentiment                # the label column: label names or integer ids
labels: [negative, neutral, positive]
split: {seed: 42, fractions: [0.8, 0.1, 0.1]}   # merge every file and split anew; `split: given` keeps train/validation/test files
"""  # noqa: E501 (the README's example, as a user writes it)


def three_class_reviews(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """`n` distinct (text, label name) rows, a third of each class, the class in the words."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = i % 3
        mood = (_NEGATIVE, _MIXED, _POSITIVE)[label]
        words = rng.choice(_NEUTRAL, size=int(rng.integers(8, 60))).tolist()
        for at in rng.integers(0, len(words), size=4):
            words.insert(int(at), str(rng.choice(mood)))
        rows.append((f"Opinion {i}: " + " ".join(words) + ".", THREE_LABELS[label]))
    return rows


def write_csv(path: Path, rows: Sequence[tuple[str, str]], columns=("review", "sentiment")) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)
    return path


def write_my_reviews(folder: Path, n: int = 150) -> Path:
    """The README's example: folder/my_reviews.yaml and folder/my_reviews/*.csv; the YAML."""
    rows = three_class_reviews(n)
    half = len(rows) // 2
    write_csv(folder / "my_reviews" / "batch1.csv", rows[:half])
    write_csv(folder / "my_reviews" / "batch2.csv", rows[half:])
    path = folder / "my_reviews.yaml"
    path.write_text(MY_REVIEWS_YAML, encoding="utf-8")
    return path


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
