"""`imdb prepare` end to end: output, bad input, a SIGKILLed run, two runs at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cli_support import assert_one_red_line
from data_support import (
    REPO,
    imdb_source,
    synthetic_reviews,
    write_aclimdb,
    write_parquet_imdb,
)

from imdb_cli import registry
from imdb_cli.data.locate import find_tokenized_cache
from imdb_cli.data.prepare import prepare
from imdb_cli.data.split import SPLITS, SplitOptions
from imdb_cli.data.tokenized import TokenizedCache, load_split, load_texts
from imdb_cli.workspace import Workspace

TINY = "tiny-bert"


def _trusted_entries(workdir: Path) -> list[Path]:
    return [p for p in (workdir / "cache").glob("*/*") if (p / "manifest.json").is_file()]


# --------------------------------------------------------------------------- happy path


def test_prepare_prints_the_split_table_and_reuses_on_rerun(
    run_cli: Callable, synthetic_imdb_dir: Path, workdir: Path
) -> None:
    args = (
        "prepare",
        "--models",
        "tiny-bert,minilm",
        "--data-dir",
        str(synthetic_imdb_dir),
        "--max-length",
        "32",
    )
    first = run_cli(*args)
    assert first.exit_code == 0, first.output
    for needle in (
        "imdb splits (new)",
        "train",
        "160",
        "val",
        "test",
        "(50.0%)",
        "tiny-bert, minilm",
        "0 duplicates dropped",
        "tokenizing",
    ):
        assert needle in first.output, needle
    second = run_cli(*args)
    assert second.exit_code == 0, second.output
    assert "imdb splits (reused)" in second.output and "reused" in second.output
    assert "reusing tokenized tiny-bert, minilm" in second.output
    assert "tokenizing" not in second.output
    assert len(_trusted_entries(workdir)) == 2


def test_data_dir_defaults_to_the_environment(
    run_cli: Callable, synthetic_imdb_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMDB_DATA_DIR", str(synthetic_imdb_dir))
    result = run_cli("prepare", "--models", TINY, "--max-length", "16", "--limit", "40")
    assert result.exit_code == 0, result.output
    assert str(synthetic_imdb_dir) in result.output and "-limit40" in result.output


def test_real_imdb_with_limit(run_cli: Callable, real_imdb_dir: Path, workdir: Path) -> None:
    result = run_cli(
        "-q",
        "prepare",
        "--models",
        "minilm",
        "--data-dir",
        str(real_imdb_dir),
        "--limit",
        "500",
        "--max-length",
        "64",
    )
    assert result.exit_code == 0, result.output
    assert "418 duplicates dropped" in result.output
    ws = Workspace(workdir)
    cache = find_tokenized_cache(ws, registry.build_tokenizer(registry.load_spec("minilm")), 64)
    assert cache.data_fingerprint.endswith("-limit500") and cache.sizes() == {
        "train": 400,
        "val": 50,
        "test": 50,
    }
    assert cache.manifest["duplicates_dropped"] == 418


# --------------------------------------------------------------------------- bad input


def _broken_parquet(folder: Path, table: pa.Table) -> Path:
    write_parquet_imdb(folder, synthetic_reviews(20), synthetic_reviews(20, seed=1))
    pq.write_table(table, folder / "plain_text" / "test-00000-of-00001.parquet")
    return folder


def test_bad_inputs_fail_with_one_red_line(
    run_cli: Callable, tmp_path: Path, synthetic_imdb_dir: Path, workdir: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    neither = tmp_path / "neither"
    neither.mkdir()
    (neither / "reviews.csv").write_text("text,label\n")
    no_text = _broken_parquet(tmp_path / "no_text", pa.table({"review": ["x"], "label": [1]}))
    bad_labels = _broken_parquet(
        tmp_path / "bad_labels", pa.table({"text": ["a", "b"], "label": [1, 4]})
    )
    rows = synthetic_reviews(20)
    latin1 = write_aclimdb(tmp_path / "latin1", rows[:10], rows[10:])
    latin1_file = latin1 / "aclImdb" / "train" / "pos" / "99999_9.txt"
    latin1_file.write_bytes("Un film très réussi".encode("latin-1"))
    unreadable = write_aclimdb(tmp_path / "unreadable", rows[:10], rows[10:])
    broken_link = unreadable / "aclImdb" / "test" / "neg" / "00000_1.txt.txt"
    broken_link.symlink_to(tmp_path / "nowhere.txt")
    data_dir = ("--data-dir", str(synthetic_imdb_dir))
    cases: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
        "missing data dir": (("--data-dir", str(tmp_path / "nope")), ("--data-dir", "nope")),
        "empty data dir": (("--data-dir", str(empty)), ("--data-dir", "empty")),
        "neither layout": (("--data-dir", str(neither)), ("neither", "aclImdb")),
        "no text column": (
            ("--data-dir", str(no_text)),
            ("test-00000-of-00001.parquet", "'text'"),
        ),
        "labels not 0/1": (("--data-dir", str(bad_labels)), ("labels", "4")),
        "not UTF-8": (("--data-dir", str(latin1)), ("99999_9.txt", "UTF-8")),
        "unreadable file": (("--data-dir", str(unreadable)), ("00000_1.txt.txt", "cannot read")),
        "unknown model": (("--models", "tiny-bert,gpt9", *data_dir), ("gpt9", "known models")),
        "max length too small": (("--max-length", "7", *data_dir), ("--max-length", "8")),
        "max length too big": (("--max-length", "600", *data_dir), ("--max-length", TINY, "512")),
        "limit too small": (("--limit", "9", *data_dir), ("--limit", "10")),
        "limit too big": (("--limit", "900", *data_dir), ("--limit", "200")),
        "bad truncation": (("--truncation", "middle", *data_dir), ("--truncation", "middle")),
        "a Hub id as --dataset": (
            ("--dataset", "stanfordnlp/imdb", *data_dir),
            ("--dataset", "source: stanfordnlp/imdb"),
        ),
        "unknown dataset": (("--dataset", "yelp", *data_dir), ("--dataset", "yelp", "imdb")),
    }
    for name, (args, needles) in cases.items():
        models = () if "--models" in args else ("--models", TINY)
        result = run_cli("prepare", *models, *args)
        try:
            assert_one_red_line(result, *needles)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from exc
        assert not _trusted_entries(workdir), name
        assert not list((workdir / "cache").rglob(".tmp-*")), name


def test_hub_unreachable_explains_the_alternative(
    run_cli: Callable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datasets
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-hub"))
    result = run_cli("prepare", "--models", TINY)
    assert_one_red_line(result, "stanfordnlp/imdb", "--data-dir", "IMDB_DATA_DIR")


def test_verbose_shows_the_traceback(run_cli: Callable, tmp_path: Path) -> None:
    result = run_cli("--verbose", "prepare", "--models", TINY, "--data-dir", str(tmp_path / "x"))
    assert result.exit_code != 0 and "Traceback" in result.output


# --------------------------------------------------------------------------- processes


def _start(workdir: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("IMDB_DATA_DIR", None)
    return subprocess.Popen(
        [sys.executable, "-m", "imdb_cli", "--workdir", str(workdir), "-q", "prepare", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _arrays(cache: TokenizedCache) -> dict[str, np.ndarray]:
    found = {}
    for split in SPLITS:
        tokens = load_split(cache, split, mmap=False)
        for name in ("input_ids", "lengths", "labels", "review_ids"):
            found[f"{split}_{name}"] = getattr(tokens, name)
    return found


def test_sigkill_midway_then_rerun_gives_a_complete_cache(
    run_cli: Callable, real_imdb_dir: Path, workdir: Path, tmp_path: Path
) -> None:
    args = ("--models", TINY, "--data-dir", str(real_imdb_dir), "--limit", "4000")
    process = _start(workdir, *args)
    deadline = time.monotonic() + 120
    temp: list[Path] = []
    while not temp and process.poll() is None and time.monotonic() < deadline:
        temp = list((workdir / "cache").glob("*/.tmp-*-len128-seed42-*"))
        time.sleep(0.02)
    assert temp, "the run ended before tokenizing: " + process.communicate()[0].decode()
    time.sleep(0.1)  # inside tokenization (seconds for 4000 reviews on 2 cores)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert not list((workdir / "cache").glob("*/*-len128-seed42")), "killed after the rename"
    assert temp[0].exists()  # the half-written entry is still there, untrusted

    result = run_cli("prepare", *args)
    assert result.exit_code == 0, result.output
    assert "tokenized 4,000 reviews" in result.output
    assert not temp[0].exists() and not list((workdir / "cache").rglob(".tmp-*"))

    tokenizer = registry.build_tokenizer(registry.load_spec(TINY))
    resumed = find_tokenized_cache(Workspace(workdir), tokenizer, 128)
    clean_ws = Workspace(tmp_path / "clean")
    clean = prepare(
        clean_ws,
        [registry.load_spec(TINY)],
        imdb_source(real_imdb_dir),
        SplitOptions(limit=4000),
        128,
    ).caches[TINY]
    assert resumed.path.relative_to(workdir) == clean.path.relative_to(clean_ws.root)
    ours, theirs = _arrays(resumed), _arrays(clean)
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert np.array_equal(ours[name], theirs[name]), name


def test_two_prepares_at_once_end_with_one_valid_cache(real_imdb_dir: Path, workdir: Path) -> None:
    args = ("--models", TINY, "--data-dir", str(real_imdb_dir), "--limit", "3000")
    processes = [_start(workdir, *args) for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0].decode() for p in processes]
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output
    entries = sorted(p.name for p in (workdir / "cache").glob("*/*") if p.is_dir())
    assert len(entries) == 2 and entries[1] == "split-seed42", entries
    assert not list((workdir / "cache").rglob(".tmp-*"))
    tokenizer = registry.build_tokenizer(registry.load_spec(TINY))
    cache = find_tokenized_cache(Workspace(workdir), tokenizer, 128)
    assert sum(cache.sizes().values()) == 3000
    assert len(load_texts(cache, "test")[1]) == cache.sizes()["test"] == 300
