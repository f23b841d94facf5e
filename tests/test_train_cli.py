"""`imdb train` and `imdb evaluate` through the real CLI: output and bad input."""

from __future__ import annotations

import errno
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from cli_support import assert_one_red_line
from training_support import TINY, tiny_config

from imdb_cli import registry
from imdb_cli.data.prepare import prepare
from imdb_cli.data.split import SplitOptions
from imdb_cli.runs import checkpoints
from imdb_cli.runs.ledger import read_ledger
from imdb_cli.runs.run import Run
from imdb_cli.training.loop import train
from imdb_cli.workspace import Workspace

pytestmark = pytest.mark.usefixtures("single_thread")  # conftest.py

FAST = ("--epochs", "1", "--limit-train", "16", "--device", "cpu")


def _tiny_run(workspace: Workspace) -> Run:
    return train(workspace, registry.load_spec(TINY), tiny_config(limit_train=16, epochs=1))


# --------------------------------------------------------------------------- happy path


def test_train_ends_with_the_study_style_summary_line(
    run_cli: Callable, prepared: Workspace
) -> None:
    result = run_cli("train", TINY, *FAST, "--run-name", "cli")
    assert result.exit_code == 0, result.output
    ledger = read_ledger(prepared.runs / TINY / "cli")
    assert ledger.test is not None
    line = (
        f"{TINY} | best val acc {ledger.best_val_acc:.4f} @ epoch 1 | "
        f"test loss {ledger.test.loss:.4f} | test acc {ledger.test.acc:.4f}"
    )
    assert line in result.output.splitlines()
    assert re.search(r"epoch 1/1: train loss \d\.\d{4} acc", result.output)


def test_quiet_train_prints_only_the_result(run_cli: Callable, prepared: Workspace) -> None:
    result = run_cli("train", TINY, *FAST, "--quiet")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 2, result.output
    assert lines[0].startswith(f"{TINY} | best val acc") and lines[1].startswith("run: ")


def test_prepare_option_builds_the_missing_cache_first(
    run_cli: Callable, workdir: Path, synthetic_imdb_dir: Path
) -> None:
    result = run_cli("train", TINY, *FAST, "--prepare", "--data-dir", str(synthetic_imdb_dir))
    assert result.exit_code == 0, result.output
    assert list((workdir / "cache").glob("*/berttokenizer-*-len128-seed42"))


def test_evaluate_reports_loss_and_accuracy_of_a_checkpoint(
    run_cli: Callable, prepared: Workspace
) -> None:
    run = _tiny_run(prepared)
    record = run.ledger.epochs[-1]
    result = run_cli("evaluate", f"{TINY}/{run.run_id}", "--split", "val", "--checkpoint", "last")
    assert result.exit_code == 0, result.output
    match = re.search(r"val loss (\d\.\d{4}) \| val acc (\d\.\d{4}) \| 60 reviews", result.output)
    assert match, result.output
    assert match.group(1) == f"{record.val_loss:.4f}"
    assert match.group(2) == f"{record.val_acc:.4f}"
    by_path = run_cli("evaluate", str(run.path), "--quiet")
    assert by_path.exit_code == 0 and "test acc" in by_path.output


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (("train", "nope"), ("unknown model 'nope'", "tiny-bert")),
        (("train", TINY, "--epochs", "0"), ("--epochs must be at least 1",)),
        (("train", TINY, "--batch-size", "0"), ("--batch-size must be at least 1",)),
        (("train", TINY, "--grad-accum", "0"), ("--grad-accum must be at least 1",)),
        (("train", TINY, "--lr", "0"), ("--lr must be positive",)),
        (("train", TINY, "--lr", "-0.001"), ("--lr must be positive",)),
        (("train", TINY, "--optimizer", "sgd"), ("--optimizer must be one of adam, adamw",)),
        (("train", TINY, "--precision", "fp16", "--device", "cpu"), ("--precision fp16",)),
        (("train", TINY, "--run-name", "a/b"), ("--run-name 'a/b'", "path separators")),
        (("train", TINY, "--resume", "no/such/run"), ("--resume no/such/run: no such run",)),
        (("evaluate", TINY), ("model 'tiny-bert' has no completed run",)),
    ],
)
def test_bad_input_gives_one_red_line(
    run_cli: Callable, prepared: Workspace, args: tuple[str, ...], needles: tuple[str, ...]
) -> None:
    assert_one_red_line(run_cli(*args), *needles)


def test_missing_cache_names_the_prepare_command(run_cli: Callable, workdir: Path) -> None:
    assert_one_red_line(
        run_cli("train", TINY, *FAST),
        "imdb prepare --models tiny-bert --max-length 128",
        "--prepare",
    )


def test_cuda_options_without_a_usable_gpu(
    run_cli: Callable, prepared: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert_one_red_line(run_cli("train", TINY, "--device", "cuda"), "--device cuda: no CUDA GPU")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Tesla T4")
    assert_one_red_line(
        run_cli("train", TINY, "--device", "cuda", "--precision", "bf16"),
        "--precision bf16: this GPU (Tesla T4) has no bf16",
    )


def test_resume_of_another_models_run_names_both(run_cli: Callable, prepared: Workspace) -> None:
    run = _tiny_run(prepared)
    assert_one_red_line(
        run_cli("train", "minilm", "--resume", str(run.path)), "'tiny-bert'", "'minilm'"
    )
    assert_one_red_line(run_cli("train", TINY, "--resume", str(run.path)), "already complete")


def test_corrupt_checkpoint_is_named(run_cli: Callable, prepared: Workspace) -> None:
    run = _tiny_run(prepared)
    path = run.path / run.ledger.epochs[0].checkpoint
    path.write_bytes(path.read_bytes()[:1000])
    assert_one_red_line(run_cli("evaluate", str(run.path)), str(path), "corrupt or truncated")


def test_full_disk_while_saving_gives_one_red_line(
    run_cli: Callable, prepared: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoints, "save_file", no_space)
    assert_one_red_line(
        run_cli("train", TINY, *FAST, "--run-name", "full"), "no space left on device while writing"
    )
    ledger = read_ledger(prepared.runs / TINY / "full")
    assert ledger.status == "failed" and not ledger.epochs


def test_several_prepared_data_sets_warn_and_data_picks_one(
    run_cli: Callable, prepared: Workspace, tmp_path: Path
) -> None:
    from data_support import imdb_source, synthetic_reviews, write_parquet_imdb

    (older,) = [p.name for p in prepared.cache.iterdir() if p.is_dir()]
    reviews = synthetic_reviews(300, seed=2)
    source = write_parquet_imdb(tmp_path / "other", reviews[:150], reviews[150:])
    newer = prepare(
        prepared,
        [registry.load_spec(TINY)],
        imdb_source(source),
        SplitOptions(),
        max_length=128,
    ).data_fingerprint
    assert newer != older

    result = run_cli("train", TINY, *FAST, "--run-name", "newest")
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert f"2 prepared data sets fit; using the newest, {newer}" in said
    assert f"the others: {older} (choose one with --data)" in said
    assert read_ledger(prepared.runs / TINY / "newest").data.data_fingerprint == newer

    result = run_cli("train", TINY, *FAST, "--data", older, "--run-name", "chosen")
    assert result.exit_code == 0, result.output
    assert "prepared data sets fit" not in result.output
    assert read_ledger(prepared.runs / TINY / "chosen").data.data_fingerprint == older

    result = run_cli("train", TINY, *FAST, "--data", "nope")
    assert_one_red_line(result, "cache/nope", "imdb prepare")
