"""The Hugging Face `Trainer` side of the training benchmark.

The same model (`EncoderForClassification`, wrapped so that it returns a loss), the same
token ids (the tokenized cache that `imdb prepare` wrote), the same batch size,
precision, optimizer math (AdamW with weight decay 0 is Adam) and constant learning rate
as `imdb train`, driven by `transformers.Trainer` with its defaults otherwise.

The Trainer is given the lightest data path there is: a torch Dataset over tensors that
are already in memory (no `datasets` Arrow decoding per row), so any gap measured
against it is not a gap in data loading.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    EvalPrediction,
    Trainer,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)

from imdb_cli.config import ModelSpec, TrainConfig
from imdb_cli.model import EncoderForClassification
from imdb_cli.registry import build_encoder


class ClassifierWithLoss(nn.Module):
    """EncoderForClassification as the Trainer wants it: a dict with `loss` and `logits`."""

    def __init__(self, classifier: EncoderForClassification) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor | None]:
        logits = self.classifier(input_ids, attention_mask).logits
        # Cross-entropy in fp32, as autocast would run it anyway.
        loss = F.cross_entropy(logits.float(), labels) if labels is not None else None
        return {"loss": loss, "logits": logits}


class CachedSplit(torch.utils.data.Dataset):
    """Rows of a tokenized split (right-padded ids + lengths), as the Trainer's dict rows."""

    def __init__(self, split: Any) -> None:
        self.input_ids = torch.as_tensor(np.asarray(split.input_ids), dtype=torch.long)
        lengths = torch.as_tensor(np.asarray(split.lengths), dtype=torch.long)
        positions = torch.arange(self.input_ids.shape[1])
        self.attention_mask = (positions[None, :] < lengths[:, None]).long()
        self.labels = torch.as_tensor(np.asarray(split.labels), dtype=torch.long)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {
            "input_ids": self.input_ids[i],
            "attention_mask": self.attention_mask[i],
            "labels": self.labels[i],
        }


class EpochClock(TrainerCallback):
    """Wall time of each training epoch: the loop over batches only, as our ledger times it.

    On a GPU the clock waits for queued kernels at both ends, or it would stop early.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.started = 0.0
        self.epoch_seconds: list[float] = []

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def on_epoch_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        self.started = self._now()

    def on_epoch_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        self.epoch_seconds.append(self._now() - self.started)


def trainer_optim(fused: bool) -> str:
    """The Trainer's name for our optimizer's kernel: fused AdamW, or the per-tensor loop."""
    return "adamw_torch_fused" if fused else "adamw_torch"


def training_arguments(
    output_dir: Path,
    config: TrainConfig,
    device: torch.device,
    precision: str,
    fused: bool,
    **overrides: Any,
) -> TrainingArguments:
    """TrainingArguments that do the same math as `imdb train` with `config`."""
    values: dict[str, Any] = {
        "output_dir": str(output_dir),
        "per_device_train_batch_size": config.batch_size,
        "per_device_eval_batch_size": config.eval_batch_size,
        "gradient_accumulation_steps": config.grad_accum,
        "num_train_epochs": 1,
        "learning_rate": config.lr,
        "lr_scheduler_type": "constant",
        "warmup_steps": 0,
        "optim": trainer_optim(fused),
        "weight_decay": 0.0,  # AdamW with no decay is Adam: the study's optimizer
        "adam_beta1": config.adam_betas[0],
        "adam_beta2": config.adam_betas[1],
        "adam_epsilon": config.adam_eps,
        "max_grad_norm": 0.0,  # imdb train does not clip (the study did not); 0 turns it off
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        "use_cpu": device.type == "cpu",
        "seed": config.seed,
        "report_to": "none",
        "save_strategy": "no",
        "eval_strategy": "no",
        "logging_strategy": "no",
        "disable_tqdm": True,
    }
    values.update(overrides)
    return TrainingArguments(**values)


def build_model(spec: ModelSpec, seed: int) -> ClassifierWithLoss:
    torch.manual_seed(seed)
    return ClassifierWithLoss(EncoderForClassification(build_encoder(spec)))


def check_same_optimizer(trainer: Trainer, config: TrainConfig, fused: bool) -> None:
    """Fail loudly if the Trainer's optimizer is not the one we meant to compare against."""
    optimizer: Any = trainer.optimizer
    inner = getattr(optimizer, "optimizer", optimizer)  # accelerate wraps it
    for group in inner.param_groups:
        if group["weight_decay"] != 0.0 or group["lr"] != config.lr:
            raise RuntimeError(f"Trainer optimizer group differs from ours: {group}")
        if bool(group.get("fused")) != fused:
            raise RuntimeError(f"Trainer optimizer fused={group.get('fused')}, expected {fused}")


@dataclass
class TrainerTiming:
    samples: int
    seconds: float


def time_training(
    spec: ModelSpec,
    train_rows: Any,
    config: TrainConfig,
    device: torch.device,
    precision: str,
    fused: bool,
) -> TrainerTiming:
    """One epoch over `train_rows` (a tokenized split) with a fresh model; its wall time."""
    model = build_model(spec, config.seed)
    data = CachedSplit(train_rows)
    clock = EpochClock(device)
    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as out:
        args = training_arguments(Path(out), config, device, precision, fused)
        trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=[clock])
        with contextlib.redirect_stdout(io.StringIO()):  # its end-of-train metrics line
            trainer.train()
        check_same_optimizer(trainer, config, fused)
    del trainer, model
    return TrainerTiming(samples=len(data), seconds=clock.epoch_seconds[0])


def _accuracy(prediction: EvalPrediction) -> dict[str, float]:
    logits = np.asarray(prediction.predictions)
    labels = np.asarray(prediction.label_ids)
    return {"accuracy": float((logits.argmax(-1) == labels).mean())}


def full_recipe(
    spec: ModelSpec,
    splits: dict[str, Any],
    config: TrainConfig,
    device: torch.device,
    precision: str,
    fused: bool,
) -> dict[str, Any]:
    """The study's recipe with the Trainer: train, validate and checkpoint every epoch,
    reload the best epoch, test it. Returns wall times and accuracies."""
    started = time.perf_counter()
    model = build_model(spec, config.seed)
    clock = EpochClock(device)
    with tempfile.TemporaryDirectory(prefix="bench-trainer-recipe-") as out:
        args = training_arguments(
            Path(out),
            config,
            device,
            precision,
            fused,
            num_train_epochs=config.epochs,
            eval_strategy="epoch",
            save_strategy="epoch",
            load_best_model_at_end=True,
            metric_for_best_model="accuracy",
            logging_strategy="epoch",
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=CachedSplit(splits["train"]),
            eval_dataset=CachedSplit(splits["val"]),
            compute_metrics=_accuracy,
            callbacks=[clock],
        )
        with contextlib.redirect_stdout(io.StringIO()):
            trainer.train()
            test = trainer.predict(CachedSplit(splits["test"]))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - started
        history = trainer.state.log_history
        val_accs = [entry["eval_accuracy"] for entry in history if "eval_accuracy" in entry]
    return {
        "seconds": seconds,
        "train_seconds": sum(clock.epoch_seconds),
        "epoch_seconds": clock.epoch_seconds,
        "val_acc": val_accs,
        "test_acc": float((test.metrics or {})["test_accuracy"]),
        "test_loss": float((test.metrics or {})["test_loss"]),
    }
