"""Training and evaluation loops.

    train:    cache -> seeded model -> per epoch: train, validate, checkpoint, ledger
              -> best-validation checkpoint (read back from its file) tested on the test split
    predict:  one forward per batch -> per-sample loss, accuracy, P(positive), pooled vectors
    evaluate: a run's checkpoint + the run's cache -> predict

Speed rules the loop keeps:
  - no host sync per step: loss sums and correct counts stay on the device and are read
    every LOG_EVERY batches (progress bar, finite-loss check, W&B) and at the epoch end;
    a batch without padding carries no attention mask, so transformers does not inspect
    one (a sync) and SDPA may use its flash kernel;
  - batches are slices of the cache's numpy arrays (no DataLoader, no collate copies),
    trimmed to their longest review, copied through pinned memory without waiting;
  - fused Adam/AdamW (several times faster than the default on the CPU as well);
  - model.train() / model.eval() only at phase boundaries; evaluation without autograd,
    shortest reviews first;
  - the learning rate is a pure function of the optimizer step, so resume needs no
    scheduler state, and the data order is a pure function of (seed, epoch), with or
    without --group-by-length;
  - switchable (TrainConfig, `imdb train --help`): precision, TF32, the attention kernel
    (ModernBERT + flash attention packs padded batches: model.Packing), length-grouped
    batches, torch.compile of the training forward.

Data parallel (`torchrun --nproc_per_node W -m imdb_cli train ...`): torchrun's WORLD_SIZE,
RANK and LOCAL_RANK start a process group (NCCL on GPUs, gloo on the CPU) and wrap the model
in DistributedDataParallel. --batch-size is the GLOBAL batch: each rank takes every W-th
review of the epoch's order in batches of batch_size // W, so one step sees exactly the
reviews a single process would (an epoch drops its last len(train) % W reviews so that every
rank takes as many steps). Train metrics are per-sample sums all-reduced over the ranks;
rank 0 alone validates, tests, prints and writes files (checkpoints, ledger, train.log,
encoder/) and sends the validation result to the others. Parameters the forward never
reaches (BERT's pooler) are frozen when the model is built, so DDP runs without
find_unused_parameters.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import os
import platform
import random
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import transformers
import yaml
from rich.progress import Progress, TaskID, TextColumn

from imdb_cli import data, registry
from imdb_cli.checkpoints import (
    CHECKPOINT_DIR,
    checkpoint_name,
    load_classifier,
    load_train_state,
    load_weights,
    save_train_state,
    save_weights,
    state_path,
)
from imdb_cli.config import ModelSpec, TrainConfig, flag_name
from imdb_cli.console import debug, info, progress, set_verbosity, verbosity, warn
from imdb_cli.device import (
    autocast,
    choose_attention,
    choose_device,
    choose_precision,
    compile_problem,
    device_name,
    grad_scaler,
    is_compile_error,
    to_device,
    use_tf32,
)
from imdb_cli.errors import ImdbError
from imdb_cli.files import pid_alive, write_atomic
from imdb_cli.ledger import LEDGER_NAME, EpochRecord, Ledger, TestRecord, write_ledger
from imdb_cli.model import EncoderForClassification, Packing
from imdb_cli.runs import (
    ENCODER_DIR,
    Run,
    check_run_name,
    is_run_dir,
    list_runs,
    new_run_id,
    now_iso,
    read_ledger,
)
from imdb_cli.tracking import NoTracker, Tracker, start_tracking
from imdb_cli.workspace import Workspace

LOG_EVERY = 20  # batches between reads of the device-side metrics (each read is a sync)
CONFIG_NAME = "config.yaml"
LOG_NAME = "train.log"
RESUMABLE = ("running", "failed", "interrupted")


# --------------------------------------------------------------------------- batches


@dataclass(frozen=True)
class Batch:
    input_ids: torch.Tensor  # int64 [B, W], W = longest review of the batch
    # int64 [B, W]; None when every review fills the W columns. The model then needs no
    # mask: transformers skips building one (no check of the mask's contents, which is a
    # host sync per forward on a GPU) and SDPA may take its flash kernel.
    attention_mask: torch.Tensor | None
    labels: torch.Tensor  # int64 [B]
    packing: Packing | None = None  # a padded batch for a model that packs (see model.py)

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The training order of epoch `epoch`: a pure function of (seed, epoch), so a resumed
    run replays exactly the order an uninterrupted run would have used."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator).numpy()


GROUP_SPAN = 50  # batches per length-sorted block of --group-by-length (as the HF Trainer's)


def length_grouped(
    order: np.ndarray, lengths: np.ndarray, batch_size: int, seed: int, epoch: int
) -> np.ndarray:
    """`order` rearranged so that each batch holds reviews of similar length (--group-by-length).

    Each run of GROUP_SPAN batches of the shuffled order is sorted by length, then the full
    batches are shuffled among themselves (seeded by seed and epoch, so resume replays it):
    batches keep their randomness across the epoch, but a batch is trimmed to a width close
    to each of its reviews' lengths instead of its longest of a random draw. A short last
    batch stays last, so every other batch is full. Under DDP the ranks split each global
    batch (see `batches`), so grouping by the global batch size groups every rank's share.
    """
    lengths = np.asarray(lengths)
    span = batch_size * GROUP_SPAN
    blocks = [order[i : i + span] for i in range(0, len(order), span)]
    grouped = np.concatenate(
        [block[np.argsort(-lengths[block], kind="stable")] for block in blocks]
        or [np.zeros(0, np.int64)]
    )
    full = len(grouped) // batch_size
    shuffle = np.random.default_rng([seed, epoch]).permutation(full)
    head = grouped[: full * batch_size].reshape(full, batch_size)[shuffle].reshape(-1)
    return np.concatenate([head, grouped[full * batch_size :]])


def batches(
    n: int,
    batch_size: int,
    order: np.ndarray | None = None,
    *,
    rank: int = 0,
    world_size: int = 1,
) -> Iterator[np.ndarray]:
    """Index arrays of consecutive batches over `order` (default 0..n-1).

    With world_size > 1 each rank takes every world_size-th review of the order, so the
    ranks see disjoint shards of the same permutation.
    """
    indices = np.arange(n) if order is None else np.asarray(order)
    shard = indices[rank::world_size]
    for start in range(0, len(shard), batch_size):
        yield shard[start : start + batch_size]


def make_batch(
    split: data.TokenizedSplit, idx: np.ndarray, device: torch.device, *, pack: bool = False
) -> Batch:
    """Slice the cache's arrays; trim padding columns no review of the batch uses.

    `pack` (the model packs padded batches): add where the real tokens go end to end.
    """
    lengths = np.asarray(split.lengths[idx], dtype=np.int64)
    width = max(int(lengths.max()), 1)  # numpy on the host: no device sync
    input_ids = torch.from_numpy(np.asarray(split.input_ids[idx, :width], dtype=np.int64))
    labels = torch.from_numpy(np.asarray(split.labels[idx], dtype=np.int64))
    mask, packing = None, None
    if int(lengths.min()) < width:
        mask = (torch.arange(width)[None, :] < torch.from_numpy(lengths)[:, None]).long()
        mask = to_device(mask, device)
        packing = Packing.of(lengths, width, device) if pack else None
    return Batch(to_device(input_ids, device), mask, to_device(labels, device), packing)


def subset(split: data.TokenizedSplit, indices: np.ndarray) -> data.TokenizedSplit:
    return replace(
        split,
        review_ids=np.asarray(split.review_ids[indices]),
        input_ids=np.asarray(split.input_ids[indices]),
        lengths=np.asarray(split.lengths[indices]),
        labels=np.asarray(split.labels[indices]),
    )


def limit_split(split: data.TokenizedSplit, limit: int | None, seed: int) -> data.TokenizedSplit:
    """A seeded random `limit` reviews of the split, kept in split order (--limit-train)."""
    if limit is None or limit >= len(split):
        return split
    chosen = np.random.default_rng(seed).choice(len(split), size=limit, replace=False)
    return subset(split, np.sort(chosen))


# --------------------------------------------------------------------------- prediction


@dataclass
class Predictions:
    """One pass over a split: per-sample metrics and each review's P(positive)."""

    loss: float  # sum of per-sample losses / samples
    acc: float  # correct / samples
    samples: int
    review_ids: np.ndarray
    labels: np.ndarray
    probs: np.ndarray  # P(positive), float32
    pooled: np.ndarray | None = None  # [N, hidden] float32 when keep_pooled
    seconds: float = 0.0

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds else 0.0


def _stats_column() -> TextColumn:
    return TextColumn("{task.fields[stats]}")


def predict(
    model: torch.nn.Module,
    split: data.TokenizedSplit,
    *,
    batch_size: int,
    device: torch.device,
    precision: str = "fp32",
    keep_pooled: bool = False,
    description: str = "eval",
) -> Predictions:
    """Loss, accuracy and P(positive) of every review; the pooled vectors come from the same
    forward pass (the original study ran the encoder twice per batch to get them)."""
    model.eval()
    started = time.perf_counter()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    probs: list[torch.Tensor] = []
    pooled: list[torch.Tensor] = []
    done = 0
    # Shortest reviews first: the order of evaluation changes no result, and batches of
    # similar lengths are trimmed to less padding (at 512 tokens, much less).
    order = np.argsort(np.asarray(split.lengths), kind="stable")
    packs = isinstance(model, EncoderForClassification) and model.packs
    with torch.inference_mode(), progress(_stats_column()) as bar:
        task = bar.add_task(description, total=len(split), stats="")
        for number, idx in enumerate(batches(len(split), batch_size, order), start=1):
            batch = make_batch(split, idx, device, pack=packs)
            with autocast(device, precision):
                out = model(batch.input_ids, batch.attention_mask, packing=batch.packing)
            logits = out.logits.float()
            loss_sum += F.cross_entropy(logits, batch.labels, reduction="sum")
            correct += (logits.argmax(dim=-1) == batch.labels).sum()
            probs.append(torch.softmax(logits, dim=-1)[:, 1])
            if keep_pooled:
                pooled.append(out.pooled.float())
            done += len(idx)
            if number % LOG_EVERY == 0 or done == len(split):
                seconds = time.perf_counter() - started
                bar.update(
                    task,
                    completed=done,
                    stats=f"loss {loss_sum.item() / done:.4f}  acc {correct.item() / done:.4f}  "
                    f"{done / seconds:.1f} samples/s",
                )
    samples = len(split)
    return Predictions(
        loss=loss_sum.item() / samples if samples else float("nan"),
        acc=correct.item() / samples if samples else float("nan"),
        samples=samples,
        review_ids=np.asarray(split.review_ids, dtype=np.int64).copy(),
        labels=np.asarray(split.labels, dtype=np.int64).copy(),
        probs=_in_split_order(probs, order) if probs else np.zeros(0, np.float32),
        pooled=_in_split_order(pooled, order) if keep_pooled and pooled else None,
        seconds=time.perf_counter() - started,
    )


def _in_split_order(parts: list[torch.Tensor], order: np.ndarray) -> np.ndarray:
    """Per-batch outputs of the reviews `order` lists, put back in split order."""
    values = torch.cat(parts).cpu().numpy()
    result = np.empty_like(values)
    result[order] = values
    return result


# --------------------------------------------------------------------------- optimization


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


# --------------------------------------------------------------------------- RNG state


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def rng_state(device: torch.device) -> dict[str, Any]:
    """RNG states as tensors and plain values, so torch.load(weights_only=True) reads them."""
    version, internal, gauss = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # type: ignore[misc]
    state: dict[str, Any] = {
        "python": {
            "version": version,
            "state": torch.tensor(internal, dtype=torch.int64),
            "gauss": gauss,
        },
        "numpy": {
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng_state(state: dict[str, Any], device: torch.device) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            npy["keys"].numpy().astype(np.uint32),
            npy["pos"],
            npy["has_gauss"],
            npy["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


# --------------------------------------------------------------------------- caches


def _cache_for_training(
    workspace: Workspace,
    spec: ModelSpec,
    tokenizer: Any,
    config: TrainConfig,
    prepare_source: data.DataSource | None,
    fingerprint: str | None,
) -> data.TokenizedCache:
    """The newest cache for this model's tokenizer and length (of the data set `fingerprint`
    when given); prepared on request."""
    try:
        return data.find_tokenized_cache(
            workspace,
            tokenizer,
            config.max_length,
            config.truncation,
            model=spec.key,
            fingerprint=fingerprint,
        )
    except ImdbError as exc:
        if fingerprint is not None:
            raise
        if prepare_source is None:
            raise ImdbError(f"{exc.message} (or add --prepare to `imdb train`)") from exc
    info(f"no tokenized data for {spec.key} yet: preparing it from {prepare_source.describe()}")
    result = data.prepare(
        workspace, [spec], prepare_source, data.SplitOptions(), config.max_length, config.truncation
    )
    return result.caches[spec.key]


def cache_of_run(workspace: Workspace, ledger: Ledger) -> data.TokenizedCache:
    """The cache a run was trained on (its ledger's data section), checked by fingerprint."""
    recorded = ledger.data.get("cache")
    fingerprint = ledger.data.get("data_fingerprint")
    if not recorded or not fingerprint:
        raise ImdbError(f"run {ledger.model}/{ledger.run_id}: its ledger names no data cache")
    path = Path(recorded)
    # The workspace may have moved: look for the same entry under this workspace too.
    for candidate in (path, workspace.cache / path.parent.name / path.name):
        cache = data.open_cache(candidate)
        if cache is not None and cache.data_fingerprint == fingerprint:
            return cache
    max_length = ledger.data.get("max_length", "?")
    raise ImdbError(
        f"run {ledger.model}/{ledger.run_id}: its data cache {path} is gone; recreate it with "
        f"`imdb prepare --models {ledger.model} --max-length {max_length}` "
        "(same data source and options)"
    )


def _data_record(
    cache: data.TokenizedCache, train_split: data.TokenizedSplit, config: TrainConfig
) -> dict[str, Any]:
    sizes = cache.sizes()
    return {
        "cache": str(cache.path.resolve()),
        "data_fingerprint": cache.data_fingerprint,
        "tokenizer_key": cache.tokenizer_key,
        "split_seed": cache.seed,
        "max_length": cache.max_length,
        "truncation": cache.truncation,
        "sizes": {**sizes, "train_used": len(train_split)},
        "limit_train": config.limit_train,
        "test_review_ids_sha256": cache.manifest.get("test_review_ids_sha256"),
    }


# --------------------------------------------------------------------------- runs


def _environment(
    device: torch.device, precision: str, world_size: int, attention: str
) -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "platform": platform.platform(),
        "device": device_name(device),
        "device_type": device.type,
        "precision": precision,
        "attention": attention,  # the kernel --attention auto chose
        "world_size": world_size,
        "torch_threads": torch.get_num_threads(),
        "hostname": socket.gethostname(),
        "pid": os.getpid(),  # with the hostname: whether a `running` run is still alive
        "command": " ".join(sys.argv),
    }


# --------------------------------------------------------------------------- data parallel


@dataclass(frozen=True)
class Distributed:
    """This process's place in a torchrun job (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world_size: int = 1

    @property
    def active(self) -> bool:
        return self.world_size > 1


def world_from_env() -> Distributed:
    """torchrun's WORLD_SIZE / RANK (absent: a single process)."""
    try:
        return Distributed(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError as exc:
        raise ImdbError(f"RANK / WORLD_SIZE must be integers (torchrun sets them): {exc}") from exc


def check_world(world: Distributed, config: TrainConfig, train_reviews: int) -> None:
    if config.batch_size % world.world_size:
        suggestion = world.world_size * max(1, config.batch_size // world.world_size)
        raise ImdbError(
            f"--batch-size {config.batch_size} is the global batch and must divide evenly over "
            f"the {world.world_size} processes (try {suggestion})"
        )
    if world.world_size > train_reviews:
        raise ImdbError(
            f"{world.world_size} processes but only {train_reviews} training reviews: "
            "use fewer processes (--nproc_per_node) or more data (--limit-train)"
        )


def start_process_group(world: Distributed, device: torch.device) -> None:
    """NCCL between GPUs, gloo between CPU processes; rank 0 may test for a long while
    the others wait, hence the long timeout."""
    if device.type == "cuda":
        torch.cuda.set_device(device)
    timeout = datetime.timedelta(hours=2)
    if device.type == "cuda":
        torch.distributed.init_process_group("nccl", timeout=timeout, device_id=device)
    else:
        torch.distributed.init_process_group("gloo", timeout=timeout)


def from_rank0(world: Distributed, value: Any) -> Any:
    """Rank 0's `value` on every rank (a picklable object)."""
    if not world.active:
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def run_to_resume(workspace: Workspace, spec: ModelSpec, resume: str | Path | None) -> Run | None:
    """`auto`: the newest unfinished run of the model (None: start fresh); else that run."""
    if resume is None:
        return None
    if str(resume) == "auto":
        unfinished = [
            run
            for run in list_runs(workspace, spec.key)
            if run.ledger.status in RESUMABLE and not _still_running(run)
        ]
        if not unfinished:
            info(f"--resume auto: no unfinished run of {spec.key}; starting a new run")
            return None
        return unfinished[-1]
    path = Path(resume)
    if not path.exists() and (workspace.model_runs(spec.key) / str(resume)).exists():
        path = workspace.model_runs(spec.key) / str(resume)
    if not path.exists():
        raise ImdbError(f"--resume {resume}: no such run folder")
    if not is_run_dir(path):
        raise ImdbError(f"--resume {resume}: not a run folder (no {LEDGER_NAME})")
    run = Run(path, read_ledger(path))
    if run.model != spec.key:
        raise ImdbError(
            f"--resume {resume}: that run belongs to model '{run.model}', not '{spec.key}'"
        )
    if run.ledger.status == "completed":
        raise ImdbError(
            f"--resume {resume}: run {run.describe()} is already complete; "
            "train again without --resume"
        )
    if _still_running(run):
        raise ImdbError(
            f"--resume {resume}: run {run.describe()} is still being trained by process "
            f"{run.ledger.environment['pid']}; wait for it or stop it first"
        )
    return run


def _still_running(run: Run) -> bool:
    """A `running` run whose process is alive on this machine: another `imdb train` is
    writing it, so `--resume auto` must not take it over. (A run on another host, or one
    whose process died without a word, counts as stopped.)"""
    environment = run.ledger.environment
    pid = environment.get("pid")
    return (
        run.ledger.status == "running"
        and environment.get("hostname") == socket.gethostname()
        and isinstance(pid, int)
        and pid_alive(pid)
    )


def _resumed_config(spec: ModelSpec, given: TrainConfig, run: Run) -> TrainConfig:
    """The run's own config; options given now that contradict it are reported and ignored.

    An option counts as given when it differs from the model's YAML. The device is where
    the run continues, not part of its recipe, so it follows the options.
    """
    saved = TrainConfig.from_dict(run.ledger.config, f"{run.path / LEDGER_NAME}: config")
    ignored = [
        f"{flag_name(f.name)} {getattr(given, f.name)} (run has {getattr(saved, f.name)})"
        for f in fields(TrainConfig)
        if f.name != "device"
        and getattr(given, f.name) != getattr(spec.training, f.name)
        and getattr(given, f.name) != getattr(saved, f.name)
    ]
    if ignored:
        warn(f"resuming {run.describe()} with its saved settings; ignoring {'; '.join(ignored)}")
    return replace(saved, device=given.device)


def _last_complete_epoch(run: Run) -> int:
    """The newest epoch whose weights and training state are both on disk."""
    for record in reversed(run.ledger.epochs):
        weights = run.path / record.checkpoint
        if weights.is_file() and state_path(run.path, record.epoch).is_file():
            return record.epoch
        warn(f"epoch {record.epoch} of {run.describe()} has no complete checkpoint; redoing it")
    return 0


def _write_config_yaml(run_dir: Path, spec: ModelSpec, config: TrainConfig) -> None:
    document = {
        "name": spec.key,
        "description": spec.description,
        "pretrained": spec.pretrained,
        "architecture": spec.architecture,
        "tokenizer": spec.tokenizer,
        "training": config.to_dict(),
    }
    text = yaml.safe_dump(document, sort_keys=False)

    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    write_atomic(run_dir / CONFIG_NAME, write)


class RunLog:
    """train.log: plain text lines beside the ledger, appended (a resumed run adds to it)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(f"{stamp} {message}\n")


# --------------------------------------------------------------------------- training


class NonFiniteLoss(ImdbError):
    pass


@dataclass
class _EpochResult:
    loss: float
    acc: float
    samples: int
    seconds: float
    lr: float


class _Trainer:
    """The state of one training session (a fresh run or a resumed one)."""

    def __init__(
        self,
        *,
        model: EncoderForClassification,
        config: TrainConfig,
        device: torch.device,
        precision: str,
        splits: dict[str, data.TokenizedSplit],
        run_dir: Path,
        ledger: Ledger,
        log: RunLog,
        tracker: Tracker,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.model = model
        self.config = config
        self.device = device
        self.precision = precision
        self.splits = splits
        self.run_dir = run_dir
        self.ledger = ledger
        self.log = log
        self.tracker = tracker
        self.rank = rank
        self.world_size = world_size
        self.main = rank == 0  # only rank 0 writes files and logs
        self.rank_batch = config.batch_size // world_size  # --batch-size is the global batch
        # DDP all-reduces (averages) the gradients in backward; `model` stays the plain module
        # for evaluation and checkpoints.
        self.forward_model: Callable[..., Any] = model
        self.ddp: torch.nn.parallel.DistributedDataParallel | None = None
        if world_size > 1:
            # No find_unused_parameters: what the forward never reaches was frozen at build
            # time (EncoderForClassification.freeze_unreached), so every trainable
            # parameter gets a gradient each step.
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[device] if device.type == "cuda" else None
            )
            self.forward_model = self.ddp
        if config.compile:
            # The training forward only: evaluation runs the plain module (no recompiles for
            # its other batch size and inference mode), and checkpoints keep plain names.
            self.forward_model = torch.compile(self.forward_model)
        self.optimizer = make_optimizer(model, config)
        self.scaler = grad_scaler(device, precision)
        self.step = 0  # optimizer steps taken, over all epochs: the one W&B x-axis
        per_epoch = steps_per_epoch(self._epoch_reviews(), config, world_size)
        self.total_steps = per_epoch * config.epochs
        self.session_started = time.perf_counter()
        self.seconds_before = ledger.total_seconds

    def _epoch_reviews(self) -> int:
        """Training reviews one epoch uses: a multiple of the world size (see the module doc)."""
        n = len(self.splits["train"])
        return n - n % self.world_size

    # ---- resume

    def restore(self, run: Run, epoch: int) -> None:
        record = run.ledger.epoch(epoch)
        load_weights(self.model, run.path / record.checkpoint)
        state = load_train_state(state_path(run.path, epoch))
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            if state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
            self.step = int(state["step"])
            restore_rng_state(state["rng"], self.device)
        except (KeyError, ValueError, RuntimeError, TypeError) as exc:
            path = state_path(run.path, epoch)
            raise ImdbError(f"training state {path} does not fit this run ({exc})") from exc
        if int(state.get("data_seed", self.config.seed)) != self.config.seed:
            warn(f"{state_path(run.path, epoch)} was written with another data seed")

    # ---- the loop

    def fit(self, first_epoch: int) -> None:
        for epoch in range(first_epoch, self.config.epochs + 1):
            if self._patience_exhausted():
                break
            result = self._train_epoch(epoch)
            val = None
            if self.main:
                val = predict(
                    self.model,
                    self.splits["val"],
                    batch_size=self.config.eval_batch_size,
                    device=self.device,
                    precision=self.precision,
                    description=f"epoch {epoch}/{self.config.epochs} val",
                )
            # Every rank keeps the same ledger in memory (early stopping reads it).
            val = from_rank0(Distributed(self.rank, self.world_size), val)
            self._end_epoch(epoch, result, val)
        if self._patience_exhausted() and len(self.ledger.epochs) < self.config.epochs:
            self.note(
                f"early stopping after epoch {self.ledger.epochs[-1].epoch}: validation "
                f"accuracy has not improved for {self.config.early_stopping_patience} epoch(s)"
            )

    def _patience_exhausted(self) -> bool:
        patience = self.config.early_stopping_patience
        if patience is None or self.ledger.best_epoch is None or not self.ledger.epochs:
            return False
        return self.ledger.epochs[-1].epoch - self.ledger.best_epoch >= patience

    def _train_epoch(self, epoch: int) -> _EpochResult:
        config, split = self.config, self.splits["train"]
        order = epoch_order(len(split), config.seed, epoch)[: self._epoch_reviews()]
        if config.group_by_length:
            order = length_grouped(order, split.lengths, config.batch_size, config.seed, epoch)
        shard = {"rank": self.rank, "world_size": self.world_size}
        epoch_batches = list(batches(len(order), self.rank_batch, order, **shard))
        self.model.train()
        started = time.perf_counter()
        meter = _TrainMeter(epoch, len(epoch_batches), self.step, config.grad_accum)
        lr = lr_at(self.step, config=config, total_steps=self.total_steps)
        description = f"epoch {epoch}/{config.epochs} train"
        with progress(_stats_column()) as bar:
            task = bar.add_task(description, total=sum(len(i) for i in epoch_batches), stats="")
            for first in range(0, len(epoch_batches), config.grad_accum):
                group = epoch_batches[first : first + config.grad_accum]
                # Each optimizer step averages over its samples, however the last group is cut;
                # every rank holds as many samples, so DDP's mean over ranks is the global mean.
                group_samples = sum(len(idx) for idx in group)
                for number, idx in enumerate(group, start=1):
                    batch = make_batch(split, idx, self.device, pack=self.model.packs)
                    with self._sync_gradients(number == len(group)):
                        logits = self._forward(batch).logits.float()
                        losses = F.cross_entropy(logits, batch.labels, reduction="none")
                        self.scaler.scale(losses.sum() / group_samples).backward()
                    meter.add(losses.detach().sum(), logits.detach(), batch.labels, len(idx))
                lr = lr_at(self.step, config=config, total_steps=self.total_steps)
                for param_group in self.optimizer.param_groups:
                    param_group["lr"] = lr
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.optimizer.zero_grad(set_to_none=True)
                self.step += 1
                if meter.pending >= LOG_EVERY or first + config.grad_accum >= len(epoch_batches):
                    self._flush(meter, bar, task, started, lr)
        loss_sum, correct, samples = self._sum_over_ranks(meter)
        return _EpochResult(
            loss=loss_sum / samples,
            acc=correct / samples,
            samples=samples,
            seconds=time.perf_counter() - started,
            lr=lr,
        )

    def _forward(self, batch: Batch) -> Any:
        try:
            with autocast(self.device, self.precision):
                return self.forward_model(
                    batch.input_ids, batch.attention_mask, packing=batch.packing
                )
        except Exception as exc:
            if not (self.config.compile and is_compile_error(exc)):
                raise
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ImdbError(
                f"--compile: torch.compile failed ({type(exc).__name__}: {reason[:300]}); "
                "train without --compile"
            ) from exc

    def _sync_gradients(self, last_of_group: bool) -> contextlib.AbstractContextManager[Any]:
        """DDP all-reduces gradients only on the last micro-batch of an accumulation group."""
        if self.ddp is not None and not last_of_group:
            return self.ddp.no_sync()
        return contextlib.nullcontext()

    def _sum_over_ranks(self, meter: _TrainMeter) -> tuple[float, int, int]:
        """The epoch's loss sum, correct count and sample count over all ranks (per-sample
        sums, never an average of per-rank averages)."""
        if self.world_size == 1:
            return meter.loss_sum, meter.correct, meter.samples
        totals = torch.tensor(
            [meter.loss_sum, float(meter.correct), float(meter.samples)],
            dtype=torch.float64,
            device=self.device,
        )
        torch.distributed.all_reduce(totals, op=torch.distributed.ReduceOp.SUM)
        loss_sum, correct, samples = totals.tolist()
        return loss_sum, round(correct), round(samples)

    def _flush(
        self, meter: _TrainMeter, bar: Progress, task: TaskID, started: float, lr: float
    ) -> None:
        """Read the device-side sums (one sync), check them, show and log them."""
        window_loss, window_acc = meter.read()  # raises NonFiniteLoss naming the step
        seconds = time.perf_counter() - started
        speed = meter.samples / seconds if seconds else 0.0
        bar.update(
            task,
            completed=meter.samples,
            stats=f"loss {meter.loss_sum / meter.samples:.4f}  "
            f"acc {meter.correct / meter.samples:.4f}  {speed:.1f} samples/s  lr {lr:.2e}",
        )
        if self.main:
            self.tracker.log(
                {
                    "train/loss": window_loss,
                    "train/acc": window_acc,
                    "train/lr": lr,
                    "train/samples_per_s": speed,
                    "epoch": meter.epoch - 1 + meter.batches_read / meter.batches_total,
                },
                step=self.step,
            )

    def _end_epoch(self, epoch: int, result: _EpochResult, val: Predictions) -> None:
        relative = f"{CHECKPOINT_DIR}/{checkpoint_name(epoch, val.acc)}"
        record = EpochRecord(
            epoch=epoch,
            train_loss=result.loss,
            train_acc=result.acc,
            train_samples=result.samples,
            val_loss=val.loss,
            val_acc=val.acc,
            val_samples=val.samples,
            checkpoint=relative,
            train_seconds=result.seconds,
            eval_seconds=val.seconds,
            train_samples_per_s=result.samples / result.seconds if result.seconds else 0.0,
            lr=result.lr,
        )
        ledger = self.ledger  # kept on every rank; written by rank 0
        if self.main:
            # Weights, then state, then the ledger: an epoch exists once the ledger lists it,
            # and by then both of its files are complete.
            save_weights(self.model, self.run_dir / relative)
            save_train_state(state_path(self.run_dir, epoch), self._train_state(epoch))
        ledger.epochs.append(record)
        if ledger.best_val_acc is None or val.acc > ledger.best_val_acc:
            ledger.best_epoch, ledger.best_val_acc = epoch, val.acc
        self.save_ledger()
        if self.main:
            self.tracker.log(
                {
                    "epoch": float(epoch),
                    "train/epoch_loss": result.loss,
                    "train/epoch_acc": result.acc,
                    "val/loss": val.loss,
                    "val/acc": val.acc,
                    "val/best_acc": float(ledger.best_val_acc),
                },
                step=self.step,
            )
        self.note(
            f"epoch {epoch}/{self.config.epochs}: train loss {result.loss:.4f} acc "
            f"{result.acc:.4f} | val loss {val.loss:.4f} acc {val.acc:.4f} | "
            f"{record.train_samples_per_s:.1f} samples/s | {relative}"
        )

    def _train_state(self, epoch: int) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(self.device),
            "data_seed": self.config.seed,
        }

    def test_best(self) -> None:
        """Read the best-validation checkpoint back from its file and test it."""
        ledger = self.ledger
        if ledger.best_epoch is None:
            raise ImdbError(f"run {ledger.model}/{ledger.run_id} has no epoch to test")
        if not self.main:
            return  # rank 0 tests; the others are done
        relative = ledger.epoch(ledger.best_epoch).checkpoint
        load_weights(self.model, self.run_dir / relative)
        test = predict(
            self.model,
            self.splits["test"],
            batch_size=self.config.eval_batch_size,
            device=self.device,
            precision=self.precision,
            description=f"test (epoch {ledger.best_epoch})",
        )
        ledger.test = TestRecord(
            epoch=ledger.best_epoch,
            checkpoint=relative,
            split="test",
            loss=test.loss,
            acc=test.acc,
            samples=test.samples,
            seconds=test.seconds,
            review_ids=[int(v) for v in test.review_ids],
            labels=[int(v) for v in test.labels],
            probs=[float(v) for v in test.probs],
        )
        ledger.status = "completed"
        ledger.error = None
        self.save_ledger()
        metrics = {"test/loss": test.loss, "test/acc": test.acc}
        self.tracker.log(metrics, step=self.step)
        self.tracker.summary(
            {**metrics, "best_epoch": ledger.best_epoch, "best_val_acc": ledger.best_val_acc}
        )
        self.note(f"test of epoch {ledger.best_epoch}: loss {test.loss:.4f} acc {test.acc:.4f}")

    # ---- records

    def save_ledger(self) -> None:
        if not self.main:
            return
        self.ledger.updated_at = now_iso()
        self.ledger.total_seconds = self.seconds_before + time.perf_counter() - self.session_started
        write_ledger(self.run_dir, self.ledger)

    def note(self, message: str) -> None:
        if self.main:
            info(message)
            self.log.write(message)

    def mark_stopped(self, status: str, error: str) -> None:
        """Record why the run stopped; a second failure here must not hide the first."""
        if not self.main:
            return
        self.ledger.status = status
        self.ledger.error = error
        try:
            self.save_ledger()
            self.log.write(f"{status}: {error}")
        except (ImdbError, OSError) as exc:
            warn(f"could not record the {status} status in {self.run_dir / LEDGER_NAME}: {exc}")


class _TrainMeter:
    """Per-sample training metrics of one epoch.

    Batch losses and correct counts stay on the device until `read` (a host sync every
    LOG_EVERY batches); the sample count is known on the host from the batch sizes.
    """

    def __init__(self, epoch: int, batches_total: int, step_at_start: int, grad_accum: int):
        self.epoch = epoch
        self.batches_total = batches_total
        self.step_at_start = step_at_start
        self.grad_accum = grad_accum
        self.loss_sum = 0.0
        self.correct = 0
        self.samples = 0
        self.batches_read = 0
        self._losses: list[torch.Tensor] = []
        self._correct: list[torch.Tensor] = []
        self._sizes: list[int] = []

    @property
    def pending(self) -> int:
        return len(self._losses)

    def add(
        self, loss_sum: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, n: int
    ) -> None:
        self._losses.append(loss_sum)
        self._correct.append((logits.argmax(dim=-1) == labels).sum())
        self._sizes.append(n)

    def read(self) -> tuple[float, float]:
        """Fold the pending batches into the totals; mean loss and accuracy of the window."""
        if not self._losses:
            return float("nan"), float("nan")
        losses = torch.stack(self._losses).double().cpu().numpy()  # the sync point
        correct = torch.stack(self._correct).cpu().numpy()
        bad = ~np.isfinite(losses)
        if bad.any():
            at = int(np.argmax(bad))
            batch = self.batches_read + at + 1
            step = self.step_at_start + (batch - 1) // self.grad_accum + 1
            raise NonFiniteLoss(
                f"training loss is {losses[at]} at epoch {self.epoch}, step {batch} of "
                f"{self.batches_total} (global step {step}); stopped. Earlier checkpoints are "
                "intact; try a lower --lr or --precision fp32"
            )
        window = sum(self._sizes)
        self.loss_sum += float(losses.sum())
        self.correct += int(correct.sum())
        self.samples += window
        self.batches_read += len(self._losses)
        self._losses, self._correct, self._sizes = [], [], []
        return float(losses.sum()) / window, float(correct.sum()) / window


def train(
    workspace: Workspace,
    spec: ModelSpec,
    config: TrainConfig,
    *,
    resume: str | Path | None = None,
    run_name: str | None = None,
    use_wandb: bool = False,
    prepare_source: data.DataSource | None = None,
    cache: data.TokenizedCache | None = None,
    data_fingerprint: str | None = None,
) -> Run:
    """Fine-tune `spec` (a new run, or `resume` = "auto" / a run folder) and test its best epoch.

    `cache` pins the tokenized data of a new run (`imdb reproduce` passes the one it just
    prepared); by default it is the newest cache for the model's tokenizer and length, of
    the data set `data_fingerprint` when given (`imdb train --data`).
    Under torchrun every process calls this; they train one model data-parallel.

    Returns the run with its completed ledger. Interrupts mark the ledger `interrupted`,
    any other error `failed` (with the message), and re-raise.
    """
    options: dict[str, Any] = {
        "resume": resume,
        "run_name": run_name,
        "use_wandb": use_wandb,
        "prepare_source": prepare_source,
        "cache": cache,
        "data_fingerprint": data_fingerprint,
    }
    world = world_from_env()
    if not world.active:
        return _train(workspace, spec, config, world=world, **options)
    if config.batch_size % world.world_size:  # before starting the group: a quick, clear error
        check_world(world, config, world.world_size)
    start_process_group(world, choose_device(config.device))
    quiet = verbosity.quiet
    if world.rank != 0:  # one process prints progress: rank 0
        set_verbosity(quiet=True, verbose=verbosity.verbose)
    try:
        return _train(workspace, spec, config, world=world, **options)
    finally:
        set_verbosity(quiet=quiet, verbose=verbosity.verbose)
        torch.distributed.destroy_process_group()


def _barrier(world: Distributed) -> None:
    if world.active:
        torch.distributed.barrier()


def _train(
    workspace: Workspace,
    spec: ModelSpec,
    config: TrainConfig,
    *,
    world: Distributed,
    resume: str | Path | None,
    run_name: str | None,
    use_wandb: bool,
    prepare_source: data.DataSource | None,
    cache: data.TokenizedCache | None,
    data_fingerprint: str | None,
) -> Run:
    main = world.rank == 0
    if run_name is not None:
        check_run_name(run_name)
    device = choose_device(config.device)
    previous = run_to_resume(workspace, spec, resume)
    _barrier(world)  # every rank has chosen the run before rank 0 creates or changes one
    if previous is not None:
        config = _resumed_config(spec, config, previous)
        if run_name is not None and run_name != previous.run_id:
            warn(f"--run-name {run_name} ignored: resuming run {previous.run_id}")
    precision = choose_precision(config.precision, device)
    if config.compile and (problem := compile_problem(device)):
        raise ImdbError(f"--compile: {problem}; train without --compile")
    use_tf32(device, config.tf32)
    model_type = str(registry.architecture_config(spec).model_type)
    attention = choose_attention(config.attention, model_type, device, precision)
    tokenizer = registry.build_tokenizer(spec)
    if previous is not None:
        recorded = cache_of_run(workspace, previous.ledger)
        if cache is not None and cache.data_fingerprint != recorded.data_fingerprint:
            raise ImdbError(
                f"run {previous.describe()} was trained on data {recorded.data_fingerprint}, "
                f"not on {cache.path}"
            )
        cache = recorded
    elif cache is None:
        if not main:
            _barrier(world)  # rank 0 finds (or with --prepare, prepares) the cache first
        cache = _cache_for_training(
            workspace, spec, tokenizer, config, prepare_source, data_fingerprint
        )
        if main:
            _barrier(world)
    elif cache.tokenizer_key != data.tokenizer_key(tokenizer):
        raise ImdbError(f"cache {cache.path} was tokenized for another tokenizer than {spec.key}'s")
    if (cache.max_length, cache.truncation) != (config.max_length, config.truncation):
        raise ImdbError(
            f"cache {cache.path} holds {cache.max_length} tokens ({cache.truncation} truncation); "
            f"the run wants --max-length {config.max_length} ({config.truncation})"
        )
    splits = {split: data.load_split(cache, split) for split in data.SPLITS}
    splits["train"] = limit_split(splits["train"], config.limit_train, config.seed)
    check_world(world, config, len(splits["train"]))

    seed_everything(config.seed)  # before building: the head's (and random encoders') init
    encoder = registry.build_encoder(spec, attn_implementation=attention)
    model = EncoderForClassification(encoder).to(device)
    frozen = model.freeze_unreached(device, precision)
    if frozen:
        debug(f"never reached by the forward, so not trained: {', '.join(frozen)}")
    parameters = sum(p.numel() for p in model.parameters())
    environment = _environment(device, precision, world.world_size, attention)

    if previous is None:
        run_id = ""
        if main:
            run_id = new_run_id(workspace, spec.key, run_name, config.seed)
            run_dir = workspace.model_runs(spec.key) / run_id
            run_dir.mkdir(parents=True)
            _write_config_yaml(run_dir, spec, config)
            encoder.config.save_pretrained(run_dir / ENCODER_DIR)
            tokenizer.save_pretrained(run_dir / ENCODER_DIR)
        run_id = from_rank0(world, run_id)
        run_dir = workspace.model_runs(spec.key) / run_id
        created = now_iso()
        ledger = Ledger(
            model=spec.key,
            run_id=run_id,
            status="running",
            config=config.to_dict(),
            data=_data_record(cache, splits["train"], config),
            environment=environment,
            parameters=parameters,
            created_at=created,
            updated_at=created,
        )
        first_epoch = 1
    else:
        run_dir, ledger = previous.path, previous.ledger
        done = _last_complete_epoch(previous)
        ledger.epochs = [e for e in ledger.epochs if e.epoch <= done]
        if ledger.best_epoch is not None and ledger.best_epoch > done:
            best = max(ledger.epochs, key=lambda e: e.val_acc, default=None)
            ledger.best_epoch = best.epoch if best else None
            ledger.best_val_acc = best.val_acc if best else None
        ledger.status, ledger.error, ledger.environment = "running", None, environment
        ledger.test = None
        first_epoch = done + 1

    log = RunLog(run_dir / LOG_NAME)
    trainer = _Trainer(
        model=model,
        config=config,
        device=device,
        precision=precision,
        splits=splits,
        run_dir=run_dir,
        ledger=ledger,
        log=log,
        tracker=NoTracker(),
        rank=world.rank,
        world_size=world.world_size,
    )
    trainer.save_ledger()  # the run exists (status running) before anything else can fail
    failed = True
    try:
        trainer.tracker = start_tracking(
            use_wandb and main,
            name=ledger.run_id if previous is None else f"{ledger.run_id}-resumed",
            group=spec.key,
            config={"model": spec.key, "run_id": ledger.run_id, **config.to_dict()},
            directory=run_dir,
        )
        if previous is not None and first_epoch > 1:
            trainer.restore(previous, first_epoch - 1)
            trainer.note(f"resumed {spec.key}/{ledger.run_id} after epoch {first_epoch - 1}")
        else:
            trainer.note(
                f"training {spec.key} run {ledger.run_id}: {len(splits['train']):,} train / "
                f"{len(splits['val']):,} val / {len(splits['test']):,} test reviews, "
                f"{config.epochs} epoch(s), batch {config.batch_size}, lr {config.lr:g}, "
                f"{environment['device']}, {precision}"
            )
        trainer.fit(first_epoch)
        trainer.test_best()
        failed = False
    except KeyboardInterrupt:
        trainer.mark_stopped("interrupted", "interrupted (Ctrl-C)")
        raise
    except torch.cuda.OutOfMemoryError as exc:
        message = (
            f"out of memory on {environment['device']} at --batch-size {config.batch_size}; "
            "use a smaller --batch-size (with --grad-accum to keep the effective batch)"
        )
        trainer.mark_stopped("failed", message)
        raise ImdbError(message) from exc
    except BaseException as exc:
        message = exc.message if isinstance(exc, ImdbError) else f"{type(exc).__name__}: {exc}"
        trainer.mark_stopped("failed", message)
        raise
    finally:
        trainer.tracker.finish(failed=failed)
    return Run(run_dir, ledger)


# --------------------------------------------------------------------------- evaluation


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
    if split not in data.SPLITS:
        raise ImdbError(f"--split must be one of {', '.join(data.SPLITS)} (got {split!r})")
    if batch_size is not None and batch_size < 1:
        raise ImdbError(f"--batch-size must be at least 1 (got {batch_size})")
    config = TrainConfig.from_dict(run.ledger.config, f"{run.path / LEDGER_NAME}: config")
    chosen = choose_device(device)
    precision = choose_precision(config.precision, chosen)
    use_tf32(chosen, config.tf32)
    cache = cache_of_run(workspace, run.ledger)
    model, path = load_classifier(run, checkpoint)
    model.to(chosen)
    return predict(
        model,
        data.load_split(cache, split),
        batch_size=batch_size or config.eval_batch_size,
        device=chosen,
        precision=precision,
        description=f"{split}: {path.name}",
    )


def summary_line(ledger: Ledger) -> str:
    """The study's table row: `bert | best val acc 0.8832 @ epoch 3 | test loss ... | ...`."""
    parts = [ledger.model]
    if ledger.best_epoch is not None and ledger.best_val_acc is not None:
        parts.append(f"best val acc {ledger.best_val_acc:.4f} @ epoch {ledger.best_epoch}")
    if ledger.test is not None:
        parts += [f"test loss {ledger.test.loss:.4f}", f"test acc {ledger.test.acc:.4f}"]
    return " | ".join(parts)
