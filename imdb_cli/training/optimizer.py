"""The optimizer and the learning-rate schedule.

The learning rate is a pure function of the optimizer step (as in nanoGPT), so a resumed
run needs only the step, not a scheduler's state.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from imdb_cli.config import TrainConfig


def lr_at(step: int, *, config: TrainConfig, total_steps: int) -> float:
    """Learning rate of optimizer step `step` (0-based): linear warmup, then the schedule.

    A pure function of the step (as in nanoGPT), so a resumed run needs only the step.
    """
    warmup = math.ceil(config.warmup_ratio * total_steps)
    if step < warmup:
        return config.lr * (step + 1) / warmup
    if config.scheduler == "constant":
        return config.lr
    progress_ = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    if config.scheduler == "linear":
        return config.lr * (1.0 - progress_)
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * progress_))


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam or AdamW, fused where this torch build supports it.

    Biases and norm weights (1-d tensors) get no weight decay, as is usual for transformers.
    """
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    groups = [
        group
        for group in (
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        )
        if group["params"]
    ]
    kind = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    options: dict[str, Any] = {"lr": config.lr, "betas": config.adam_betas, "eps": config.adam_eps}
    try:
        return kind(groups, fused=True, **options)
    except (RuntimeError, ValueError):  # a device or dtype without a fused kernel
        return kind(groups, **options)


def steps_per_epoch(samples: int, config: TrainConfig, world_size: int = 1) -> int:
    per_rank = math.ceil(samples / world_size)
    return math.ceil(math.ceil(per_rank / config.batch_size) / config.grad_accum)
