"""Helpers of the predict and export tests: the head+tail run, and reading `imdb predict`.

The head+tail run is the one whose reviews are cut in the middle: tiny-bert trained on a
cache prepared at 48 tokens with head+tail truncation (most synthetic reviews are longer),
100 test reviews. conftest.py's `head_tail_root` builds it once per session.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from data_support import imdb_source, synthetic_reviews, write_parquet_imdb
from training_support import tiny_config
from typer.testing import CliRunner, Result

from imdb_cli import registry
from imdb_cli.cli import app
from imdb_cli.data.prepare import prepare
from imdb_cli.data.split import SplitOptions
from imdb_cli.data.tokenized import load_texts
from imdb_cli.runs.caches import cache_of_run
from imdb_cli.runs.select import resolve_run
from imdb_cli.training.loop import train
from imdb_cli.workspace import Workspace

HEAD_TAIL_LENGTH = 48
HEAD_TAIL_REVIEWS = 1000  # 800 train / 100 val / 100 test


def head_tail_workspace(base: Path) -> Workspace:
    reviews = synthetic_reviews(HEAD_TAIL_REVIEWS, seed=3)
    half = HEAD_TAIL_REVIEWS // 2
    source = write_parquet_imdb(base / "imdb", reviews[:half], reviews[half:])
    workspace = Workspace(base / "workspace")
    spec = registry.load_spec("tiny-bert")
    prepare(
        workspace,
        [spec],
        imdb_source(source),
        SplitOptions(),
        max_length=HEAD_TAIL_LENGTH,
        truncation="head+tail",
    )
    config = tiny_config(
        epochs=1,
        limit_train=64,
        eval_batch_size=16,
        max_length=HEAD_TAIL_LENGTH,
        truncation="head+tail",
    )
    train(workspace, spec, config)
    return workspace


def split_texts(root: Path, model: str, split: str = "test") -> tuple[list[int], list[str]]:
    """Review ids and texts of a split of the data the model's newest run was trained on."""
    workspace = Workspace(root)
    cache = cache_of_run(workspace, resolve_run(workspace, model).ledger)
    review_ids, texts, _ = load_texts(cache, split)
    return [int(i) for i in review_ids], texts


def imdb(root: Path, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(app, ["--workdir", str(root), *args], input=stdin)


def jsonl_rows(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def probs_of(rows: list[dict], label_names: list[str]) -> np.ndarray:
    return np.array([[row[f"prob_{name}"] for name in label_names] for row in rows])
