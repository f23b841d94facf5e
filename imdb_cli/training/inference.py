"""Inference: one forward pass per batch over a tokenized split (loss, accuracy, class
probabilities, pooled vectors), and `evaluate`, a run's checkpoint on a split of its data.

Evaluation runs without autograd and takes the shortest reviews first (`shortest_first`,
which `imdb predict` shares): the order changes no result, and batches of similar lengths
are trimmed to less padding.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from imdb_cli.console import progress, stats_column
from imdb_cli.data.split import SPLITS
from imdb_cli.data.tokenized import TokenizedSplit, load_split
from imdb_cli.device import autocast, choose_device, choose_precision, use_tf32
from imdb_cli.errors import ImdbError
from imdb_cli.model import EncoderForClassification
from imdb_cli.runs.caches import cache_of_run
from imdb_cli.runs.checkpoints import load_classifier
from imdb_cli.runs.run import Run
from imdb_cli.training.batches import Batch, batches, make_batch
from imdb_cli.training.metrics import LOG_EVERY
from imdb_cli.workspace import Workspace


@dataclass
class Predictions:
    """One pass over a split: per-sample metrics and each review's class probabilities."""

    loss: float  # sum of per-sample losses / samples
    acc: float  # correct / samples
    samples: int
    review_ids: np.ndarray
    labels: np.ndarray
    probs: np.ndarray  # [N, classes] float32: softmax of the logits, one row per review
    pooled: np.ndarray | None = None  # [N, hidden] float32 when keep_pooled
    seconds: float = 0.0

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds else 0.0


def predict(
    model: torch.nn.Module,
    split: TokenizedSplit,
    *,
    batch_size: int,
    device: torch.device,
    precision: str = "fp32",
    keep_pooled: bool = False,
    description: str = "eval",
) -> Predictions:
    """Loss, accuracy and class probabilities of every review; the pooled vectors come from
    the same forward pass."""
    model.eval()
    started = time.perf_counter()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    probs: list[torch.Tensor] = []
    pooled: list[torch.Tensor] = []
    done = 0
    packs = isinstance(model, EncoderForClassification) and model.packs
    order, ordered = shortest_first(split, batch_size, device, pack=packs)
    with torch.inference_mode(), progress(stats_column()) as bar:
        task = bar.add_task(description, total=len(split), stats="")
        for number, batch in enumerate(ordered, start=1):
            with autocast(device, precision):
                out = model(batch.input_ids, batch.attention_mask, packing=batch.packing)
            logits = out.logits.float()
            loss_sum += F.cross_entropy(logits, batch.labels, reduction="sum")
            correct += (logits.argmax(dim=-1) == batch.labels).sum()
            probs.append(torch.softmax(logits, dim=-1))
            if keep_pooled:
                pooled.append(out.pooled.float())
            done += len(batch)
            if number % LOG_EVERY == 0 or done == len(split):
                bar.update(  # the bar shows the rate itself
                    task,
                    completed=done,
                    stats=f"loss {loss_sum.item() / done:.4f}  acc {correct.item() / done:.4f}",
                )
            else:
                bar.update(task, completed=done)  # the count is on the host: no device sync
    samples = len(split)
    loss = loss_sum.item() / samples if samples else float("nan")
    if samples and not math.isfinite(loss):
        raise ImdbError(
            f"{description}: the loss is {loss} over {samples} reviews (the weights or the "
            "inputs hold non-finite values); no result recorded"
        )
    return Predictions(
        loss=loss,
        acc=correct.item() / samples if samples else float("nan"),
        samples=samples,
        review_ids=np.asarray(split.review_ids, dtype=np.int64).copy(),
        labels=np.asarray(split.labels, dtype=np.int64).copy(),
        probs=in_split_order(probs, order) if probs else np.zeros((0, 0), np.float32),
        pooled=in_split_order(pooled, order) if keep_pooled and pooled else None,
        seconds=time.perf_counter() - started,
    )


def shortest_first(
    split: TokenizedSplit, batch_size: int, device: torch.device, *, pack: bool = False
) -> tuple[np.ndarray, Iterator[Batch]]:
    """The split's batches, shortest reviews first, and the order they take the reviews in.

    The order of evaluation changes no result, and batches of similar lengths are trimmed
    to less padding (at 512 tokens, much less). `imdb predict` scores new reviews through
    this too, so a test review gets the probabilities its run's ledger holds.
    """
    order = np.argsort(np.asarray(split.lengths), kind="stable")
    ordered = (
        make_batch(split, idx, device, pack=pack) for idx in batches(len(split), batch_size, order)
    )
    return order, ordered


def in_split_order(parts: list[torch.Tensor], order: np.ndarray) -> np.ndarray:
    """Per-batch outputs of the reviews `order` lists, put back in split order."""
    values = torch.cat(parts).cpu().numpy()
    result = np.empty_like(values)
    result[order] = values
    return result


def evaluate(
    workspace: Workspace,
    run: Run,
    *,
    checkpoint: str = "best",
    split: str = "test",
    batch_size: int | None = None,
    device: str = "auto",
) -> Predictions:
    """Any checkpoint of a run on a split of the run's own cache."""
    if split not in SPLITS:
        raise ImdbError(f"--split must be one of {', '.join(SPLITS)} (got {split!r})")
    if batch_size is not None and batch_size < 1:
        raise ImdbError(f"--batch-size must be at least 1 (got {batch_size})")
    config = run.ledger.config
    chosen = choose_device(device)
    precision = choose_precision(config.precision, chosen)
    use_tf32(chosen, config.tf32)
    cache = cache_of_run(workspace, run.ledger)
    model, path = load_classifier(run, checkpoint)
    model.to(chosen)
    return predict(
        model,
        load_split(cache, split),
        batch_size=batch_size or config.eval_batch_size,
        device=chosen,
        precision=precision,
        description=f"{split}: {path.name}",
    )
