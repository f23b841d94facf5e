"""Data parallelism under torchrun: this process's place in the job, the process group,
and what the ranks exchange.

`torchrun --nproc_per_node W -m imdb_cli train ...` sets WORLD_SIZE, RANK and LOCAL_RANK:
the process group is NCCL between GPUs and gloo between CPU processes, and the model is
wrapped in DistributedDataParallel. --batch-size is the GLOBAL batch: each rank takes every
W-th review of the epoch's order in batches of batch_size // W, so one step sees exactly the
reviews a single process would (an epoch drops its last len(train) % W reviews so that every
rank takes as many steps). Train metrics are per-sample sums all-reduced over the ranks;
rank 0 alone validates, tests, prints and writes files and sends the validation result to the
others. Parameters the forward never reaches (BERT's pooler) are frozen when the model is
built, so DDP runs without find_unused_parameters.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from imdb_cli.config import TrainConfig
from imdb_cli.console import set_verbosity, verbosity
from imdb_cli.device import choose_device
from imdb_cli.errors import ImdbError


@dataclass(frozen=True)
class Distributed:
    """This process's place in a torchrun job (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the one process that prints and writes files."""
        return self.rank == 0


def world_from_env() -> Distributed:
    """torchrun's WORLD_SIZE / RANK (absent: a single process)."""
    try:
        return Distributed(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError as exc:
        raise ImdbError(f"RANK / WORLD_SIZE must be integers (torchrun sets them): {exc}") from exc


def check_batch_size(world: Distributed, batch_size: int) -> None:
    if batch_size % world.world_size:
        suggestion = world.world_size * max(1, batch_size // world.world_size)
        raise ImdbError(
            f"--batch-size {batch_size} is the global batch and must divide evenly over "
            f"the {world.world_size} processes (try {suggestion})"
        )


def check_world(world: Distributed, config: TrainConfig, train_reviews: int) -> None:
    check_batch_size(world, config.batch_size)
    if world.world_size > train_reviews:
        raise ImdbError(
            f"{world.world_size} processes but only {train_reviews} training reviews: "
            "use fewer processes (--nproc_per_node) or more data (--limit-train)"
        )


@contextlib.contextmanager
def process_group(world: Distributed, config: TrainConfig) -> Iterator[None]:
    """Under torchrun: the process group for one training, and progress from rank 0 only."""
    if not world.active:
        yield
        return
    check_batch_size(world, config.batch_size)  # before starting the group: a quick, clear error
    _start_process_group(world, choose_device(config.device))
    quiet = verbosity.quiet
    if not world.main:
        set_verbosity(quiet=True, verbose=verbosity.verbose)
    try:
        yield
    finally:
        set_verbosity(quiet=quiet, verbose=verbosity.verbose)
        torch.distributed.destroy_process_group()


def _start_process_group(world: Distributed, device: torch.device) -> None:
    """NCCL between GPUs, gloo between CPU processes; rank 0 may test for a long while
    the others wait, hence the long timeout."""
    if device.type == "cuda":
        torch.cuda.set_device(device)
    timeout = datetime.timedelta(hours=2)
    if device.type == "cuda":
        torch.distributed.init_process_group("nccl", timeout=timeout, device_id=device)
    else:
        torch.distributed.init_process_group("gloo", timeout=timeout)


def barrier(world: Distributed) -> None:
    if world.active:
        torch.distributed.barrier()


@contextlib.contextmanager
def rank0_first(world: Distributed) -> Iterator[None]:
    """Rank 0 runs the block first (it may write what the others then read)."""
    if not world.main:
        barrier(world)
    yield
    if world.main:
        barrier(world)


def from_rank0(world: Distributed, value: Any) -> Any:
    """Rank 0's `value` on every rank (a picklable object)."""
    if not world.active:
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def sum_over_ranks(world: Distributed, values: list[float], device: torch.device) -> list[float]:
    """Each value summed over all ranks (per-sample sums, never averages of averages)."""
    if not world.active:
        return values
    totals = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(totals, op=torch.distributed.ReduceOp.SUM)
    return [float(v) for v in totals.tolist()]


def data_parallel(
    model: torch.nn.Module, world: Distributed, device: torch.device
) -> torch.nn.parallel.DistributedDataParallel | None:
    """The model wrapped for DDP (None in a single process), which all-reduces (averages)
    the gradients in backward.

    No find_unused_parameters: what the forward never reaches was frozen at build time
    (EncoderForClassification.freeze_unreached), so every trainable parameter gets a
    gradient each step.
    """
    if not world.active:
        return None
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device] if device.type == "cuda" else None
    )
