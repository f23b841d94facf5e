"""The training loop: `train` fine-tunes a model (a new run or a resumed one) and tests
its best epoch.

    cache -> seeded model -> per epoch: train, validate, checkpoint, ledger
          -> best-validation checkpoint (read back from its file) tested on the test split

Speed rules the loop keeps:
  - no host sync per step: loss sums and correct counts stay on the device and are read
    every LOG_EVERY batches (metrics.TrainMeter); a batch without padding carries no
    attention mask, so transformers does not inspect one (a sync) and SDPA may use its
    flash kernel;
  - batches are slices of the cache's arrays, copied through pinned memory (batches.py);
  - fused Adam/AdamW (optimizer.py);
  - model.train() / model.eval() only at phase boundaries; evaluation without autograd,
    shortest reviews first (inference.py);
  - the learning rate is a pure function of the optimizer step and the data order a pure
    function of (seed, epoch), so a resumed run continues exactly (resume.py, rng.py);
  - switchable (TrainConfig, `imdb train --help`): precision, TF32, the attention kernel,
    length-grouped batches, torch.compile of the training forward.

Under torchrun every process runs `train`; distributed.py says how the work is shared.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich.progress import Progress, TaskID

from imdb_cli import registry
from imdb_cli.config import ModelSpec, TrainConfig
from imdb_cli.console import info, progress, stats_column, warn
from imdb_cli.data.entry import DatasetEntry, load_dataset_entry
from imdb_cli.data.locate import cache_for_run
from imdb_cli.data.sources import DataSource
from imdb_cli.data.tokenized import TokenizedCache, TokenizedSplit
from imdb_cli.device import autocast, grad_scaler, is_compile_error
from imdb_cli.errors import ImdbError, Terminated, first_line
from imdb_cli.model import EncoderForClassification
from imdb_cli.runs.caches import cache_of_run
from imdb_cli.runs.checkpoints import (
    CHECKPOINT_DIR,
    checkpoint_name,
    in_run,
    load_train_state,
    load_weights,
    save_train_state,
    save_weights,
    state_path,
)
from imdb_cli.runs.folder import LOG_NAME, RunLog, create_run
from imdb_cli.runs.ledger import (
    LEDGER_NAME,
    EpochRecord,
    Ledger,
    TestRecord,
    read_ledger,
    write_ledger,
)
from imdb_cli.runs.lock import holding_run, tidy_model_runs
from imdb_cli.runs.run import Run, check_run_name, now_iso
from imdb_cli.training.batches import Batch, batches, epoch_order, length_grouped, make_batch
from imdb_cli.training.build import Hardware, build_model, choose_hardware, load_splits
from imdb_cli.training.distributed import (
    Distributed,
    barrier,
    check_world,
    data_parallel,
    from_rank0,
    process_group,
    rank0_first,
    sum_over_ranks,
    world_from_env,
)
from imdb_cli.training.environment import environment, load_average
from imdb_cli.training.inference import Predictions, predict
from imdb_cli.training.metrics import LOG_EVERY, TrainMeter
from imdb_cli.training.optimizer import lr_at, make_optimizer, steps_per_epoch
from imdb_cli.training.resume import reopen, resumed_config, run_to_resume
from imdb_cli.training.rng import restore_rng_state, rng_state
from imdb_cli.training.tracking import NoTracker, Tracker, start_tracking
from imdb_cli.workspace import Workspace


def train(
    workspace: Workspace,
    spec: ModelSpec,
    config: TrainConfig,
    *,
    resume: str | Path | None = None,
    run_name: str | None = None,
    use_wandb: bool = False,
    dataset: DatasetEntry | None = None,
    prepare_source: DataSource | None = None,
    cache: TokenizedCache | None = None,
    data_fingerprint: str | None = None,
    options: frozenset[str] | None = None,
) -> Run:
    """Fine-tune `spec` (a new run, or `resume` = "auto" / a run folder) and test its best epoch.

    A new run trains on `dataset` (`prepare_source`'s when that is given; when None, IMDB,
    or the data set of the prepared data `data_fingerprint`). `cache` pins its tokenized
    data (`imdb reproduce` passes the one it just prepared); by default it is the newest
    cache of the data set for the model's tokenizer and length, of the prepared data
    `data_fingerprint` when given (`imdb train --data`), prepared from `prepare_source` when
    missing and given (`imdb train --prepare`). A resumed run continues on its own data.
    `options`: the settings given on the command line; resuming refuses one that differs
    from the run's (resume.resumed_config). Under torchrun every process calls this; they
    train one model data-parallel, and rank 0 holds the run's lock (runs/lock.py).

    Returns the run with its completed ledger. Interrupts mark the ledger `interrupted`,
    any other error `failed` (with the message), and re-raise.
    """
    world = world_from_env()
    with process_group(world, config), contextlib.ExitStack() as held:
        if run_name is not None:
            check_run_name(run_name)
        if world.main:
            tidy_model_runs(workspace, spec.key)
        given = prepare_source.entry if prepare_source is not None else dataset
        entry = given or load_dataset_entry(None)
        previous = run_to_resume(workspace, spec, resume, entry.name)
        barrier(world)  # every rank has chosen the run before rank 0 creates or changes one
        if previous is not None:
            # Held until training ends: a second trainer of this run stops with a red line.
            held.enter_context(holding_run(previous.path, world, previous.describe()))
            previous = Run(previous.path, read_ledger(previous.path))  # as its last holder left it
            config = resumed_config(spec, config, previous, run_name, options)
            if dataset is not None and dataset.name != previous.ledger.dataset:
                warn(
                    f"--dataset {dataset.name} ignored: run {previous.describe()} continues on "
                    f"its own data set, {previous.ledger.dataset}"
                )
        hardware = choose_hardware(spec, config)
        tokenizer = registry.build_tokenizer(spec)
        with rank0_first(world):  # with --prepare, rank 0 prepares the cache the others read
            cache = cache_for_run(
                workspace,
                spec,
                tokenizer,
                config.max_length,
                config.truncation,
                dataset=given,
                recorded=cache_of_run(workspace, previous.ledger) if previous else None,
                pinned=cache,
                prepare_source=prepare_source,
                fingerprint=data_fingerprint,
            )
        splits = load_splits(cache, config)
        check_world(world, config, len(splits["train"]))
        model = build_model(spec, hardware, config.seed, len(cache.label_names), splits, cache)
        record = environment(hardware, world.world_size)
        if previous is None:
            run_dir, ledger = create_run(
                workspace,
                spec,
                config,
                model=model,
                tokenizer=tokenizer,
                cache=cache,
                train_reviews=len(splits["train"]),
                environment=record,
                run_name=run_name,
                world=world,
            )
            held.enter_context(holding_run(run_dir, world, f"{spec.key}/{ledger.run_id}"))
            first_epoch = 1
        else:
            run_dir, ledger, first_epoch = previous.path, previous.ledger, reopen(previous, record)
        trainer = Trainer(model, config, hardware, splits, run_dir, ledger, world)
        trainer.run(first_epoch, resumed=previous, use_wandb=use_wandb)
        return Run(run_dir, ledger)


@dataclass
class EpochResult:
    loss: float
    acc: float
    samples: int
    seconds: float
    lr: float


class Trainer:
    """The state of one training session (a fresh run or a resumed one)."""

    def __init__(
        self,
        model: EncoderForClassification,
        config: TrainConfig,
        hardware: Hardware,
        splits: dict[str, TokenizedSplit],
        run_dir: Path,
        ledger: Ledger,
        world: Distributed,
    ) -> None:
        self.model = model
        self.config = config
        self.device = hardware.device
        self.precision = hardware.precision
        self.splits = splits
        self.run_dir = run_dir
        self.ledger = ledger
        self.log = RunLog(run_dir / LOG_NAME)
        self.tracker: Tracker = NoTracker()
        self.world = world
        self.main = world.main  # only rank 0 writes files and logs
        self.rank_batch = config.batch_size // world.world_size  # --batch-size is the global batch
        # `model` stays the plain module for evaluation and checkpoints.
        self.ddp = data_parallel(model, world, self.device)
        self.forward_model: Callable[..., Any] = self.ddp or model
        if config.compile:
            # The training forward only: evaluation runs the plain module (no recompiles for
            # its other batch size and inference mode), and checkpoints keep plain names.
            self.forward_model = torch.compile(self.forward_model)
        self.optimizer = make_optimizer(model, config)
        self.scaler = grad_scaler(self.device, self.precision)
        self.step = 0  # optimizer steps taken, over all epochs: the one W&B x-axis
        per_epoch = steps_per_epoch(self._epoch_reviews(), config, world.world_size)
        self.total_steps = per_epoch * config.epochs
        self.session_started = time.perf_counter()
        self.seconds_before = ledger.total_seconds

    def _epoch_reviews(self) -> int:
        """Training reviews one epoch uses: a multiple of the world size (see distributed.py)."""
        n = len(self.splits["train"])
        return n - n % self.world.world_size

    def run(self, first_epoch: int, *, resumed: Run | None, use_wandb: bool) -> None:
        """Epochs `first_epoch`.. then the test of the best; the ledger records how it ended."""
        ledger, config = self.ledger, self.config
        with self.recording_failures():
            self.save_ledger()  # the run exists (status running) before anything else can fail
            # A resumed run continues its own W&B run, under the same name and step axis.
            self.tracker = start_tracking(
                use_wandb and self.main,
                name=ledger.run_id,
                group=ledger.model,
                config={"model": ledger.model, "run_id": ledger.run_id, **config.to_dict()},
                directory=self.run_dir,
                run_id=ledger.wandb_run_id,
                logged_before=ledger.wandb_last_step,
            )
            if self.tracker.run_id is not None:
                ledger.wandb_run_id = self.tracker.run_id
                self.save_ledger()
            if resumed is not None and first_epoch > 1:
                self.restore(resumed, first_epoch - 1)
                self.note(f"resumed {ledger.model}/{ledger.run_id} after epoch {first_epoch - 1}")
            else:
                splits = self.splits
                self.note(
                    f"training {ledger.model} run {ledger.run_id}: {len(splits['train']):,} "
                    f"train / {len(splits['val']):,} val / {len(splits['test']):,} test reviews, "
                    f"{config.epochs} epoch(s), batch {config.batch_size}, lr {config.lr:g}, "
                    f"{ledger.environment.device}, {self.precision}"
                )
            self.fit(first_epoch)
            ledger.environment.load_average_end = load_average()
            self.test_best()

    # ---- resume

    def restore(self, run: Run, epoch: int) -> None:
        record = run.ledger.epoch(epoch)
        load_weights(self.model, in_run(run.path, record.checkpoint), record.weights_sha256)
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
            val = from_rank0(self.world, val)
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

    def _train_epoch(self, epoch: int) -> EpochResult:
        config, split = self.config, self.splits["train"]
        order = epoch_order(len(split), config.seed, epoch)[: self._epoch_reviews()]
        if config.group_by_length:
            order = length_grouped(order, split.lengths, config.batch_size, config.seed, epoch)
        shard = {"rank": self.world.rank, "world_size": self.world.world_size}
        epoch_batches = list(batches(len(order), self.rank_batch, order, **shard))
        self.model.train()
        started = time.perf_counter()
        meter = TrainMeter(epoch, len(epoch_batches), self.step, config.grad_accum)
        lr = lr_at(self.step, config=config, total_steps=self.total_steps)
        description = f"epoch {epoch}/{config.epochs} train"
        done = 0  # reviews this rank trained on, counted on the host (no device sync)
        with progress(stats_column()) as bar:
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
                    done += len(idx)
                    bar.update(task, completed=done)
                lr = lr_at(self.step, config=config, total_steps=self.total_steps)
                for param_group in self.optimizer.param_groups:
                    param_group["lr"] = lr
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.optimizer.zero_grad(set_to_none=True)
                self.step += 1
                if meter.pending >= LOG_EVERY or first + config.grad_accum >= len(epoch_batches):
                    self._flush(meter, bar, task, started, lr)
        # Per-sample sums over every rank, never an average of per-rank averages.
        loss_sum, correct, samples = sum_over_ranks(
            self.world, [meter.loss_sum, float(meter.correct), float(meter.samples)], self.device
        )
        return EpochResult(
            loss=loss_sum / samples,
            acc=correct / samples,
            samples=round(samples),
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
            raise ImdbError(
                f"--compile: torch.compile failed ({type(exc).__name__}: "
                f"{first_line(exc)[:300]}); "
                "train without --compile"
            ) from exc

    def _sync_gradients(self, last_of_group: bool) -> contextlib.AbstractContextManager[Any]:
        """DDP all-reduces gradients only on the last micro-batch of an accumulation group."""
        if self.ddp is not None and not last_of_group:
            return self.ddp.no_sync()
        return contextlib.nullcontext()

    def _flush(
        self, meter: TrainMeter, bar: Progress, task: TaskID, started: float, lr: float
    ) -> None:
        """Read the device-side sums (one sync), check them, show and log them."""
        window_loss, window_acc = meter.read()  # raises NonFiniteLoss naming the step
        seconds = time.perf_counter() - started
        speed = meter.samples / seconds if seconds else 0.0
        bar.update(
            task,
            completed=meter.samples,
            # The bar shows its own live rate; a second, per-window one beside it would go
            # stale between flushes and disagree with it.
            stats=f"loss {meter.loss_sum / meter.samples:.4f}  "
            f"acc {meter.correct / meter.samples:.4f}  lr {lr:.2e}",
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

    def _end_epoch(self, epoch: int, result: EpochResult, val: Predictions) -> None:
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
            record.weights_sha256 = save_weights(self.model, self.run_dir / relative)
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
        best = ledger.epoch(ledger.best_epoch)
        relative = best.checkpoint
        load_weights(self.model, in_run(self.run_dir, relative), best.weights_sha256)
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
            probs=[[float(p) for p in row] for row in test.probs],
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
        if self.tracker.run_id is not None:
            self.ledger.wandb_last_step = self.tracker.last_step
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

    @contextlib.contextmanager
    def recording_failures(self) -> Iterator[None]:
        """Whatever stops the session is written to the ledger as its status, then raised."""
        failed = True
        try:
            yield
            failed = False
        except KeyboardInterrupt as exc:
            how = "SIGTERM" if isinstance(exc, Terminated) else "Ctrl-C"
            self.mark_stopped("interrupted", f"interrupted ({how})")
            raise
        except torch.cuda.OutOfMemoryError as exc:
            message = (
                f"out of memory on {self.ledger.environment.device} at --batch-size "
                f"{self.config.batch_size}; use a smaller --batch-size (with --grad-accum to "
                "keep the effective batch)"
            )
            self.mark_stopped("failed", message)
            raise ImdbError(message) from exc
        except BaseException as exc:
            message = exc.message if isinstance(exc, ImdbError) else f"{type(exc).__name__}: {exc}"
            self.mark_stopped("failed", message)
            raise
        finally:
            self.tracker.finish(failed=failed)
