"""Training without the CLI: metrics, learning, determinism, failure records."""

from __future__ import annotations

import errno
import itertools
import json
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from data_support import imdb_source
from training_support import (
    DEFAULT_THREADS,
    TINY,
    copy_workspace,
    tiny_config,
)

from imdb_cli import device, registry
from imdb_cli.data.prepare import prepare
from imdb_cli.data.split import SplitOptions
from imdb_cli.data.tokenized import TokenizedSplit, load_split
from imdb_cli.errors import ImdbError
from imdb_cli.model import ClassifierOutput, EncoderForClassification
from imdb_cli.runs import checkpoints
from imdb_cli.runs.caches import cache_of_run
from imdb_cli.runs.ledger import read_ledger
from imdb_cli.training import loop
from imdb_cli.training.batches import batches, epoch_order, limit_split, make_batch
from imdb_cli.training.inference import evaluate, predict
from imdb_cli.training.loop import train
from imdb_cli.training.optimizer import lr_at, make_optimizer
from imdb_cli.workspace import Workspace

pytestmark = pytest.mark.usefixtures("single_thread")  # conftest.py

CPU = torch.device("cpu")


@pytest.fixture
def workspace(prepared_root: Path, tmp_path: Path) -> Workspace:
    return copy_workspace(prepared_root, tmp_path / "ws")


@pytest.fixture
def tiny_model() -> EncoderForClassification:
    torch.manual_seed(0)
    return EncoderForClassification(registry.build_encoder(registry.load_spec(TINY))).eval()


def _five_reviews() -> TokenizedSplit:
    rng = np.random.default_rng(3)
    lengths = np.array([12, 5, 16, 9, 3], dtype=np.int32)
    input_ids = np.zeros((5, 16), dtype=np.int32)
    for row, length in enumerate(lengths):
        input_ids[row, :length] = rng.integers(1000, 2000, size=length)
    return TokenizedSplit(
        review_ids=np.array([40, 11, 7, 23, 5], dtype=np.int64),
        input_ids=input_ids,
        lengths=lengths,
        labels=np.array([1, 0, 1, 1, 0], dtype=np.int64),
        pad_token_id=0,
    )


def _one_by_one(model: EncoderForClassification, split: TokenizedSplit) -> torch.Tensor:
    """Logits of each review alone, without padding: the reference for batched passes."""
    rows = []
    with torch.no_grad():
        for i in range(len(split)):
            n = int(split.lengths[i])
            ids = torch.from_numpy(split.input_ids[i : i + 1, :n].astype(np.int64))
            rows.append(model(ids, torch.ones_like(ids)).logits[0])
    return torch.stack(rows)


# --------------------------------------------------------------------------- prediction


def test_accuracy_and_loss_count_each_review_once_with_a_short_last_batch(tiny_model) -> None:
    split = _five_reviews()
    logits = _one_by_one(tiny_model, split)
    labels = torch.from_numpy(split.labels)
    correct = int((logits.argmax(-1) == labels).sum())

    result = predict(tiny_model, split, batch_size=2, device=CPU)

    assert result.samples == 5
    assert result.acc == correct / 5  # exact: 3 batches of 2, 2, 1 weigh per review
    expected_loss = F.cross_entropy(logits, labels, reduction="sum").item() / 5
    assert result.loss == pytest.approx(expected_loss, rel=1e-5)
    assert result.review_ids.tolist() == [40, 11, 7, 23, 5]
    assert result.labels.tolist() == [1, 0, 1, 1, 0]
    np.testing.assert_allclose(result.probs, torch.softmax(logits, -1).numpy(), rtol=1e-5)


def test_pooled_embeddings_come_from_the_same_pass_as_the_probabilities(tiny_model) -> None:
    split = _five_reviews()
    result = predict(tiny_model, split, batch_size=2, device=CPU, keep_pooled=True)
    assert result.pooled is not None and result.pooled.shape == (5, 64)
    with torch.no_grad():
        head = tiny_model.head(torch.from_numpy(result.pooled))
    np.testing.assert_allclose(result.probs, torch.softmax(head, -1).numpy(), rtol=1e-5)
    assert predict(tiny_model, split, batch_size=2, device=CPU).pooled is None


# --------------------------------------------------------------------------- pieces


def test_batches_cover_every_review_once_and_ranks_get_disjoint_shards() -> None:
    order = epoch_order(23, seed=42, epoch=1)
    single = np.concatenate(list(batches(23, 4, order)))
    assert sorted(single.tolist()) == list(range(23))
    assert [len(b) for b in batches(23, 4, order)] == [4, 4, 4, 4, 4, 3]
    shards = [np.concatenate(list(batches(23, 4, order, rank=r, world_size=2))) for r in (0, 1)]
    assert not set(shards[0].tolist()) & set(shards[1].tolist())
    assert sorted(np.concatenate(shards).tolist()) == list(range(23))


def test_data_order_is_a_function_of_seed_and_epoch_only() -> None:
    first = epoch_order(100, seed=42, epoch=2)
    torch.manual_seed(123)  # the global RNG must not matter
    assert np.array_equal(first, epoch_order(100, seed=42, epoch=2))
    assert not np.array_equal(first, epoch_order(100, seed=42, epoch=3))
    assert not np.array_equal(first, epoch_order(100, seed=7, epoch=2))


def test_attention_mask_covers_exactly_the_real_tokens() -> None:
    batch = make_batch(_five_reviews(), np.array([1, 4]), CPU)
    assert batch.input_ids.shape == (2, 5)  # trimmed to the longest review of the batch
    assert batch.attention_mask.sum(dim=1).tolist() == [5, 3]


@pytest.mark.parametrize(
    ("scheduler", "expected"),
    [
        ("constant", [0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]),
        ("linear", [0.5, 1.0, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125]),
    ],
)
def test_learning_rate_is_a_pure_function_of_the_step(scheduler: str, expected: list) -> None:
    config = tiny_config(lr=1.0, scheduler=scheduler, warmup_ratio=0.2)
    got = [lr_at(step, config=config, total_steps=10) for step in range(10)]
    assert got == pytest.approx(expected)


def test_cosine_schedule_decays_from_peak_to_near_zero() -> None:
    config = tiny_config(lr=1.0, scheduler="cosine")
    got = [lr_at(step, config=config, total_steps=100) for step in range(100)]
    assert got[0] == 1.0 and got[50] == pytest.approx(0.5) and got[99] < 0.001
    assert all(a >= b for a, b in itertools.pairwise(got))


def test_optimizer_is_fused_and_spares_biases_from_weight_decay(tiny_model) -> None:
    optimizer = make_optimizer(tiny_model, tiny_config(weight_decay=0.01))
    assert optimizer.defaults.get("fused") is True
    decays = {group["weight_decay"] for group in optimizer.param_groups}
    assert decays == {0.01, 0.0}
    no_decay = next(g for g in optimizer.param_groups if g["weight_decay"] == 0.0)
    assert all(p.ndim == 1 for p in no_decay["params"])


def test_choices_of_device_and_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    assert device.choose_device("cpu") == CPU
    assert device.choose_precision("auto", CPU) == "fp32"
    assert device.choose_precision("bf16", CPU) == "bf16"
    with pytest.raises(ImdbError, match="--precision fp16 needs a CUDA GPU"):
        device.choose_precision("fp16", CPU)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device.choose_device("auto") == CPU
    with pytest.raises(ImdbError, match="--device cuda: no CUDA GPU"):
        device.choose_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Tesla T4")
    gpu = torch.device("cuda", 0)
    assert device.choose_precision("auto", gpu) == "fp32"
    with pytest.raises(ImdbError, match=r"--precision bf16: this GPU \(Tesla T4\) has no bf16"):
        device.choose_precision("bf16", gpu)


# --------------------------------------------------------------------------- training


def test_tiny_model_overfits_64_reviews(workspace: Workspace) -> None:
    config = tiny_config(limit_train=64, epochs=15)  # lr 1e-3, constant (the YAML)
    run = train(workspace, registry.load_spec(TINY), config)
    model, _ = checkpoints.load_classifier(run, "last")
    cache = cache_of_run(workspace, run.ledger)
    seen = limit_split(load_split(cache, "train"), 64, config.seed)
    result = predict(model, seen, batch_size=64, device=CPU)
    assert result.acc >= 0.95, [e.train_acc for e in run.ledger.epochs]
    assert run.ledger.epochs[-1].train_loss < run.ledger.epochs[0].train_loss


def test_run_folder_holds_config_encoder_log_ledger_and_checkpoints(workspace: Workspace) -> None:
    spec = registry.load_spec(TINY)
    run = train(workspace, spec, tiny_config(limit_train=32, epochs=2), run_name="r1")
    assert run.path == workspace.runs / TINY / "r1"
    for name in ("config.yaml", "train.log", "ledger.json", "encoder/config.json"):
        assert (run.path / name).is_file(), name
    ledger = read_ledger(run.path)
    assert ledger.status == "completed" and ledger.error is None
    assert [e.epoch for e in ledger.epochs] == [1, 2]
    for record in ledger.epochs:
        assert record.train_samples == 32 and record.val_samples == 60
        assert (
            record.checkpoint
            == f"checkpoints/epoch_{record.epoch}_acc_{record.val_acc:.4f}.safetensors"
        )
        assert (run.path / record.checkpoint).is_file()
        assert checkpoints.state_path(run.path, record.epoch).is_file()
        # accuracies are counts over reviews
        assert round(record.val_acc * 60, 6) == round(record.val_acc * 60)
    best = max(ledger.epochs, key=lambda e: e.val_acc)
    assert (ledger.best_epoch, ledger.best_val_acc) == (best.epoch, best.val_acc)
    env = ledger.environment
    assert env.precision == "fp32" and env.world_size == 1 and env.torch == torch.__version__
    assert ledger.data.data_fingerprint and ledger.data.sizes["train_used"] == 32
    assert "epoch 2/2" in (run.path / "train.log").read_text()


def test_test_record_holds_each_review_of_the_best_checkpoint(workspace: Workspace) -> None:
    spec = registry.load_spec(TINY)
    run = train(workspace, spec, tiny_config(limit_train=32, epochs=2))
    test = run.ledger.test
    assert test is not None and test.epoch == run.ledger.best_epoch and test.samples == 60
    assert test.checkpoint == run.ledger.epoch(test.epoch).checkpoint
    probs, labels = np.array(test.probs), np.array(test.labels)
    assert probs.shape == (60, 2)  # one row of class probabilities per review
    assert len(test.review_ids) == len(set(test.review_ids)) == 60
    assert test.acc == pytest.approx(np.mean(probs.argmax(axis=1) == labels))
    # the same numbers come back when the best checkpoint is read again from its file
    again = evaluate(workspace, run, checkpoint="best", split="test", device="cpu")
    assert again.loss == pytest.approx(test.loss, rel=1e-6) and again.acc == test.acc
    assert again.review_ids.tolist() == test.review_ids


def test_same_seed_twice_gives_identical_ledger_metrics(workspace: Workspace) -> None:
    spec = registry.load_spec(TINY)
    config = tiny_config(limit_train=48, epochs=2)
    first = train(workspace, spec, config).ledger
    second = train(workspace, spec, config).ledger
    assert first.run_id != second.run_id
    fields = ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "checkpoint")
    for a, b in zip(first.epochs, second.epochs, strict=True):
        assert [getattr(a, f) for f in fields] == [getattr(b, f) for f in fields]
    assert first.test is not None and second.test is not None
    assert (first.test.loss, first.test.probs) == (second.test.loss, second.test.probs)


def test_early_stopping_ends_the_run_when_validation_stops_improving(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    scores = iter([0.7, 0.6, 0.65, 0.9, 0.9])
    real_predict = predict

    def scripted(model, split, **kwargs):  # validation accuracy: best at epoch 1
        result = real_predict(model, split, **kwargs)
        if kwargs.get("description", "").endswith("val"):
            result.acc = next(scores)
        return result

    monkeypatch.setattr(loop, "predict", scripted)
    config = tiny_config(limit_train=16, epochs=5, early_stopping_patience=2)
    run = train(workspace, registry.load_spec(TINY), config)
    assert [e.epoch for e in run.ledger.epochs] == [1, 2, 3]
    assert run.ledger.best_epoch == 1 and run.ledger.test is not None
    assert run.ledger.test.epoch == 1
    assert "early stopping after epoch 3" in (run.path / "train.log").read_text()


# --------------------------------------------------------------------------- failures


def test_non_finite_loss_stops_the_run_naming_epoch_and_step(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_forward = EncoderForClassification.forward
    training_calls = {"n": 0}

    def poisoned(self, input_ids, attention_mask, token_type_ids=None, **kwargs):
        out = real_forward(self, input_ids, attention_mask, token_type_ids, **kwargs)
        if self.training:
            training_calls["n"] += 1
            if training_calls["n"] >= 4 + 3:  # epoch 1 has 4 batches; the 3rd of epoch 2
                return ClassifierOutput(out.logits * float("nan"), out.pooled)
        return out

    monkeypatch.setattr(EncoderForClassification, "forward", poisoned)
    config = tiny_config(limit_train=64, epochs=3)
    with pytest.raises(ImdbError, match=r"loss is nan at epoch 2, step 3 of 4 \(global step 7\)"):
        train(workspace, registry.load_spec(TINY), config, run_name="nan")
    run_dir = workspace.runs / TINY / "nan"
    ledger = read_ledger(run_dir)
    assert ledger.status == "failed" and "epoch 2, step 3" in (ledger.error or "")
    assert [e.epoch for e in ledger.epochs] == [1]
    checkpoints.read_weights(run_dir / ledger.epochs[0].checkpoint)  # still loads
    assert not list((run_dir / "checkpoints").glob("epoch_2*"))


def test_kill_while_writing_a_checkpoint_leaves_earlier_ones_and_a_valid_ledger(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_save = checkpoints.save_file
    saves = {"n": 0}

    def killed_mid_write(tensors, filename, metadata=None):
        saves["n"] += 1
        real_save(tensors, filename, metadata=metadata)
        if saves["n"] == 2:  # epoch 2: half the file is on disk when the kill arrives
            path = Path(filename)
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoints, "save_file", killed_mid_write)
    spec, config = registry.load_spec(TINY), tiny_config(limit_train=32, epochs=2)
    with pytest.raises(KeyboardInterrupt):
        train(workspace, spec, config, run_name="killed")
    run_dir = workspace.runs / TINY / "killed"
    ledger = json.loads((run_dir / "ledger.json").read_text())  # valid JSON
    assert ledger["status"] == "interrupted" and len(ledger["epochs"]) == 1
    checkpoints.read_weights(run_dir / ledger["epochs"][0]["checkpoint"])
    left = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert left == sorted(["epoch_1.state.pt", Path(ledger["epochs"][0]["checkpoint"]).name])

    monkeypatch.setattr(checkpoints, "save_file", real_save)
    resumed = train(workspace, spec, config, resume="auto")
    assert resumed.path == run_dir and resumed.ledger.status == "completed"
    assert [e.epoch for e in resumed.ledger.epochs] == [1, 2]


def test_disk_full_while_saving_fails_and_keeps_the_previous_checkpoint(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_save = checkpoints.save_file
    saves = {"n": 0}

    def full_disk(tensors, filename, metadata=None):
        saves["n"] += 1
        if saves["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(tensors, filename, metadata=metadata)

    monkeypatch.setattr(checkpoints, "save_file", full_disk)
    with pytest.raises(ImdbError, match=r"no space left on device while writing .*epoch_2_acc"):
        train(
            workspace,
            registry.load_spec(TINY),
            tiny_config(limit_train=16, epochs=2),
            run_name="full",
        )
    ledger = read_ledger(workspace.runs / TINY / "full")
    assert ledger.status == "failed" and "no space left" in (ledger.error or "")
    checkpoints.read_weights(workspace.runs / TINY / "full" / ledger.epochs[0].checkpoint)


# --------------------------------------------------------------------------- tracking


class _FakeWandbRun:
    def __init__(self) -> None:
        self.logs: list[tuple[int, dict]] = []
        self.summary: dict[str, Any] = {}
        self.exit_code: int | None = None

    def log(self, metrics: dict, step: int) -> None:
        self.logs.append((step, dict(metrics)))

    def finish(self, exit_code: int = 0) -> None:
        self.exit_code = exit_code


def test_wandb_gets_one_increasing_step_for_every_log(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_run = _FakeWandbRun()
    init_args: dict[str, Any] = {}

    def init(**kwargs: Any) -> _FakeWandbRun:
        init_args.update(kwargs)
        return fake_run

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=init))
    monkeypatch.setenv("WANDB_PROJECT", "imdb-tests")
    config = tiny_config(limit_train=48, batch_size=2, epochs=2)  # 24 steps per epoch
    run = train(workspace, registry.load_spec(TINY), config, use_wandb=True)

    assert init_args["project"] == "imdb-tests" and init_args["name"] == run.run_id
    steps = [step for step, _ in fake_run.logs]
    assert steps == sorted(steps) and steps[-1] == 48  # never backwards: nothing dropped
    epoch_logs = [(s, m) for s, m in fake_run.logs if "val/acc" in m]
    assert [(s, m["val/acc"]) for s, m in epoch_logs] == [
        (24, run.ledger.epochs[0].val_acc),
        (48, run.ledger.epochs[1].val_acc),
    ]
    assert fake_run.logs[-1][1]["test/acc"] == run.ledger.test.acc  # type: ignore[union-attr]
    assert fake_run.summary["best_epoch"] == run.ledger.best_epoch and fake_run.exit_code == 0


def test_wandb_offline_mode_works_without_network(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    started = time.perf_counter()
    run = train(
        workspace, registry.load_spec(TINY), tiny_config(limit_train=8, epochs=1), use_wandb=True
    )
    assert run.ledger.status == "completed"
    assert list((run.path / "wandb").glob("offline-run-*")), "no offline W&B run written"
    assert time.perf_counter() - started < 120


def test_wandb_not_installed_says_how_to_install(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    with pytest.raises(ImdbError, match=r"needs the wandb package: pip install 'wandb"):
        train(
            workspace,
            registry.load_spec(TINY),
            tiny_config(limit_train=8, epochs=1),
            use_wandb=True,
        )


# --------------------------------------------------------------------------- real weights


@pytest.mark.slow
def test_minilm_learns_real_sentiment_in_one_epoch(real_imdb_dir: Path, tmp_path: Path) -> None:
    """1 epoch on 2,000 real reviews; test on 1,000 held-out ones. About 4-5 min on 2 cores."""
    torch.set_num_threads(DEFAULT_THREADS)  # as `imdb train` runs
    workspace = Workspace(tmp_path / "ws")
    spec = registry.load_spec("minilm")
    prepare(
        workspace,
        [spec],
        imdb_source(real_imdb_dir),
        SplitOptions(limit=10_000),  # 8,000 / 1,000 / 1,000
        max_length=128,
    )
    started = time.perf_counter()
    config = spec.training.with_overrides(limit_train=2000, epochs=1, device="cpu")
    run = train(workspace, spec, config)
    seconds = time.perf_counter() - started
    assert run.ledger.test is not None and run.ledger.test.samples == 1000
    print(f"minilm: test acc {run.ledger.test.acc:.4f} in {seconds:.0f}s")
    assert run.ledger.test.acc >= 0.78
