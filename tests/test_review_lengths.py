"""Accuracy by review length on two trained tiny runs: full token counts, buckets, figure."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from analysis_support import MODELS, imdb

from imdb_cli.compare import breakdown, review_lengths
from imdb_cli.data.tokenized import load_split, load_texts
from imdb_cli.runs.caches import cache_of_run
from imdb_cli.runs.select import resolve_run
from imdb_cli.workspace import Workspace

pytestmark = pytest.mark.usefixtures("single_thread")  # conftest.py


@pytest.fixture
def workspace(trained_workspace: Workspace) -> Workspace:
    return trained_workspace


def test_full_counts_are_the_run_tokenizers_untruncated_counts(workspace: Workspace) -> None:
    run = resolve_run(workspace, "tiny-bert")
    counts = review_lengths.full_token_counts(workspace, run)
    cache = cache_of_run(workspace, run.ledger)
    ids, texts, _ = load_texts(cache, "test")
    tokenizer = run.tokenizer()
    for review_id, text in zip(ids.tolist(), texts, strict=True):
        assert counts[review_id] == len(tokenizer(text)["input_ids"])
    # The cache holds the same reviews cut at the max length: equal where they fit.
    split = load_split(cache, "test")
    for review_id, cut in zip(split.review_ids.tolist(), split.lengths.tolist(), strict=True):
        if counts[review_id] <= cache.max_length:
            assert counts[review_id] == cut
        else:
            assert cut == cache.max_length
    assert max(counts.values()) > cache.max_length  # some reviews were cut: buckets matter


def test_counts_are_kept_once_per_data_set_and_tokenizer(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = resolve_run(workspace, "tiny-bert")
    first = review_lengths.full_token_counts(workspace, run)
    path = review_lengths.counts_path(workspace, run)
    assert path.is_file()

    def no_tokenizing(*args: object, **kwargs: object) -> np.ndarray:
        raise AssertionError("counted again")

    monkeypatch.setattr(review_lengths, "count_tokens", no_tokenizing)
    # tiny-modernbert uses the same vocabulary and data: the same file serves it.
    other = resolve_run(workspace, "tiny-modernbert")
    assert review_lengths.counts_path(workspace, other) == path
    assert review_lengths.full_token_counts(workspace, other) == first
    monkeypatch.undo()
    path.write_bytes(b"not an npz")  # damaged: counted again, never trusted
    assert review_lengths.full_token_counts(workspace, run) == first


def test_compare_json_buckets_hold_every_test_review_and_its_prediction(
    workspace: Workspace, tmp_path: Path
) -> None:
    result = imdb(workspace, "compare", *MODELS, "-f", "json", "--plot", str(tmp_path / "fig"))
    assert result.exit_code == 0, result.output
    data_out = json.loads(result.stdout)
    for row in data_out["models"]:
        run = resolve_run(workspace, row["label"])
        test = run.ledger.test
        assert test is not None
        buckets = row["errors"]["length_buckets"]
        assert sum(b["reviews"] for b in buckets) == test.samples
        counts = review_lengths.full_token_counts(workspace, run)
        expected = breakdown.length_buckets(run.ledger, counts)
        assert [b["correct"] for b in buckets] == [b.correct for b in expected]
        assert sum(b["correct"] for b in buckets) == round(test.acc * test.samples)
        # The speed figures carry the machine and its load when training started and ended.
        machine, env = row["recipe"]["machine"], run.ledger.environment
        assert isinstance(env.load_average_start, float)
        assert isinstance(env.load_average_end, float)
        assert (machine["load_start"], machine["load_end"]) == (
            env.load_average_start,
            env.load_average_end,
        )
        assert machine["cpu_count"] == os.cpu_count() and machine["device"] == env.device
    names = sorted(p.name for p in (tmp_path / "fig").iterdir())
    assert names == [
        "accuracy_by_length.png",
        "confusion_matrices.png",
        "learning_curves.png",
        "reliability.png",
    ]
