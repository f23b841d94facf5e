"""Trials side by side: several workers on one machine, or one command per machine, taking
the trials of a sweep from a shared Optuna study.

    imdb sweep bert --lr 2e-5,3e-5,5e-5,8e-5 --seeds 42,43,44 --workers 8
    imdb sweep bert --lr ... --storage postgresql://host/db      (the same on every machine)

Each (rate, seed) of a sweep is one point of Optuna's grid (GridSampler) and one ordinary
run under the sweep's name for it, so the ledgers stay the truth: a point is done when its
ledger here says completed or failed, or when a trial of it completed elsewhere; the sweep
record is written from the ledgers as `imdb sweep` without workers writes it.

Claiming: `study.ask()` pops a queued trial (Optuna's WAITING -> RUNNING is atomic in the
journal and in an RDB) or makes a new one, to which the GridSampler gives the grid point of
the trial's number (so every point's trial is known from its creation). Where a race still
gives two trials one point (two workers queueing a reopened point at once, an RDB numbering
two new trials alike), the lowest-numbered trial of the point owns it and the other is
dropped as a duplicate (failed with `imdb:outcome` = duplicate) before anything trains; so
is a new trial past the grid's numbers, whose point was drawn at random.

A worker that dies: its heartbeat stops, the next worker that looks fails the trial
(storage.py) and Optuna queues it again; whoever pops it resumes the run folder from its
last checkpoint when the folder is here (`imdb train --resume`, under the run lock), else
starts it. The point keeps one run, so nothing is counted twice.

On this machine `--workers N` starts N worker processes (`python -m imdb_cli.study.workers
worker JOB`), each with one GPU (CUDA_VISIBLE_DEVICES) or an equal share of the CPU cores
(torch threads); a worker ends when its parent does. With `--nproc-per-trial K` a worker
holds K GPUs and launches each trial through torchrun; the trial's settings are written to
a file before torchrun starts, and every rank trains exactly those (transformers#18609:
ranks that each asked Optuna for a trial trained different ones).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from imdb_cli import registry
from imdb_cli.config import TrainConfig
from imdb_cli.console import err, info, set_verbosity, verbosity, warn
from imdb_cli.errors import ImdbError, first_line
from imdb_cli.runs.sweeps import (
    SEARCHED,
    SearchPlan,
    SearchRecord,
    SweepPlan,
    SweepRecord,
    Trial,
    TrialResult,
    created_at,
    format_rate,
    read_record,
    record_path,
    trial_result,
    write_record,
    write_search_record,
)
from imdb_cli.study.storage import StorageChoice, beating, heartbeat_seconds, import_optuna
from imdb_cli.study.storage import open_storage as _open_storage
from imdb_cli.study.sweep import clear_unstarted, train_trial
from imdb_cli.workspace import Workspace

# User attributes of an Optuna trial.
SLOT = "imdb:slot"  # a TPE search's trial: which of its N runs it is
OUTCOME = "imdb:outcome"  # why a trial did not complete: failed, interrupted, duplicate
WORKER = "imdb:worker"  # who held it: w1@host (pid)
WORKDIR = "imdb:workdir"  # the workspace it trained in (its ledger is there)
# A point whose trials crashed here this often without a failed ledger (a process killed
# by the kernel, a torchrun that could not start) is given up, not retried forever.
MAX_ATTEMPTS = 3

DONE, HELD, OPEN = "done", "held", "open"
Point = tuple[float, int]


@dataclass(frozen=True)
class SweepJob:
    """One sweep as workers get it: the model as given (a key or a YAML path), the plan (a
    grid of rates and seeds, or a TPE search), and each grid trial's `imdb train` line for
    the record."""

    spec_source: str
    plan: SweepPlan | SearchPlan
    commands: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        plan = self.plan
        common = {
            "spec_source": self.spec_source,
            "model": plan.model,
            "base": plan.base.to_dict(),
            "data_fingerprint": plan.data_fingerprint,
            "sweep_id": plan.sweep_id,
            "commands": self.commands,
        }
        if isinstance(plan, SearchPlan):
            return common | {
                "search": "tpe",
                "trials": plan.trials,
                "ranges": [list(r) for r in plan.ranges],
                "seed": plan.seed,
            }
        return common | {"rates": list(plan.rates), "seeds": list(plan.seeds)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepJob:
        base = TrainConfig.from_dict(data["base"], "study job: base")
        plan: SweepPlan | SearchPlan
        if data.get("search") == "tpe":
            plan = SearchPlan(
                str(data["model"]),
                int(data["trials"]),
                tuple((str(n), float(lo), float(hi)) for n, lo, hi in data["ranges"]),
                int(data["seed"]),
                base,
                str(data["data_fingerprint"]),
            )
        else:
            plan = SweepPlan(
                str(data["model"]),
                tuple(float(r) for r in data["rates"]),
                tuple(int(s) for s in data["seeds"]),
                base,
                str(data["data_fingerprint"]),
            )
        if plan.sweep_id != data["sweep_id"]:
            raise ImdbError(
                f"study job: the plan gives {plan.sweep_id}, not {data['sweep_id']} (was the "
                "worker started by another version of imdb?)"
            )
        return cls(str(data["spec_source"]), plan, dict(data.get("commands", {})))

    @property
    def study_name(self) -> str:
        return f"{self.plan.model}/{self.plan.sweep_id}"


@dataclass(frozen=True)
class PoolOptions:
    """How trials run side by side."""

    workers: int = 1  # on this machine
    storage: str | None = None  # None: the journal in the workspace
    nproc_per_trial: int = 1  # >1: each trial is a torchrun of that many processes
    use_wandb: bool = False

    def check(self) -> None:
        if self.workers < 1:
            raise ImdbError(f"--workers must be at least 1 (got {self.workers})")
        if self.nproc_per_trial < 1:
            raise ImdbError(f"--nproc-per-trial must be at least 1 (got {self.nproc_per_trial})")


@dataclass(frozen=True)
class Slot:
    """What one worker on this machine gets: GPUs (CUDA_VISIBLE_DEVICES) or CPU threads."""

    name: str
    gpus: tuple[str, ...] = ()
    threads: int | None = None

    def describe(self) -> str:
        if self.gpus:
            return f"{self.name}: GPU {','.join(self.gpus)}"
        return f"{self.name}: {self.threads} thread(s)"


@dataclass(frozen=True)
class WorkerJob:
    """Everything a worker process needs (written as JSON before it starts)."""

    workdir: str
    storage: StorageChoice
    slot: Slot
    sweeps: list[SweepJob]
    nproc_per_trial: int = 1
    use_wandb: bool = False
    quiet: bool = False  # no trial lines either
    quiet_training: bool = False  # no training bars (several workers share the terminal)
    parent: int | None = None  # the worker ends when this process does

    def to_dict(self) -> dict[str, Any]:
        return {
            "workdir": self.workdir,
            "storage": asdict(self.storage),
            "slot": {**asdict(self.slot), "gpus": list(self.slot.gpus)},
            "sweeps": [s.to_dict() for s in self.sweeps],
            "nproc_per_trial": self.nproc_per_trial,
            "use_wandb": self.use_wandb,
            "quiet": self.quiet,
            "quiet_training": self.quiet_training,
            "parent": self.parent,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkerJob:
        slot = data["slot"]
        return cls(
            str(data["workdir"]),
            StorageChoice(**data["storage"]),
            Slot(str(slot["name"]), tuple(slot["gpus"]), slot["threads"]),
            [SweepJob.from_dict(s) for s in data["sweeps"]],
            int(data["nproc_per_trial"]),
            bool(data["use_wandb"]),
            bool(data["quiet"]),
            bool(data["quiet_training"]),
            data.get("parent"),
        )


# --------------------------------------------------------------------------- this machine


def layout(options: PoolOptions, device: str) -> list[Slot]:
    """One slot per worker: `nproc_per_trial` GPUs each when the trials run on GPUs, else
    an equal share of this process's CPU cores."""
    options.check()
    gpus = visible_gpus(device)
    workers, nproc = options.workers, options.nproc_per_trial
    names = [f"w{i + 1}" for i in range(workers)]
    if gpus:
        need = workers * nproc
        if need > len(gpus):
            raise ImdbError(
                f"--workers {workers} x --nproc-per-trial {nproc} needs {need} GPUs; "
                f"{len(gpus)} visible here (use fewer workers, or --device cpu)"
            )
        return [
            Slot(name, tuple(gpus[i * nproc : (i + 1) * nproc])) for i, name in enumerate(names)
        ]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    if workers * nproc > cores:
        warn(
            f"{workers * nproc} training processes on {cores} CPU core(s): each gets one "
            "thread, and they slow each other down"
        )
    threads = max(1, cores // (workers * nproc))
    return [Slot(name, threads=threads) for name in names]


def visible_gpus(device: str) -> list[str]:
    """The GPUs this process may hand out (CUDA_VISIBLE_DEVICES' entries when it is set);
    none when the trials train on the CPU."""
    if device == "cpu":
        return []
    from imdb_cli.device import choose_device  # torch

    if choose_device(device).type != "cuda":
        return []
    import torch

    count = torch.cuda.device_count()
    listed = [g.strip() for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g]
    return listed[:count] if listed else [str(i) for i in range(count)]


def run_pool(
    workspace: Workspace, sweeps: Sequence[SweepJob], options: PoolOptions
) -> list[SweepRecord | SearchRecord]:
    """Every trial of `sweeps` not done yet, by `options.workers` workers here (and by any
    other machine's workers on the same storage); the sweeps' records, from the ledgers."""
    options.check()
    choice = StorageChoice.parse(options.storage, workspace)
    storage = _open_storage(choice)
    for job in sweeps:
        create_study(storage, job)
        _write_record(workspace, job)
    slots = layout(options, sweeps[0].plan.base.device)
    where = socket.gethostname()
    info(
        f"study storage {choice.describe()}; {len(slots)} worker(s) on {where} "
        f"({'; '.join(s.describe() for s in slots)})"
    )
    jobs = [
        WorkerJob(
            str(workspace.root.resolve()),
            choice,
            slot,
            list(sweeps),
            options.nproc_per_trial,
            options.use_wandb,
            quiet=verbosity.quiet,
            quiet_training=len(slots) > 1,
            parent=os.getpid() if len(slots) > 1 else None,
        )
        for slot in slots
    ]
    if len(jobs) == 1:
        work(jobs[0])
    else:
        _run_processes(jobs)
    return [_read_record(workspace, job) for job in sweeps]


def create_study(storage: Any, job: SweepJob) -> Any:
    """The sweep's study, made by whoever comes first (the others load it)."""
    optuna = import_optuna()
    plan = job.plan
    if isinstance(plan, SearchPlan):
        # Unseeded: workers with one seed would each draw the same settings.
        sampler = optuna.samplers.TPESampler()
    else:
        sampler = grid_sampler_class()({"lr": list(plan.rates), "seed": list(plan.seeds)})
    return optuna.create_study(
        study_name=job.study_name,
        storage=storage,
        sampler=sampler,
        direction="maximize",
        load_if_exists=True,
    )


def grid_sampler_class() -> type:
    """Optuna's GridSampler without its stop at the end of the grid: `Study.stop` raises
    outside `optimize` (optuna/optuna#5141, documented since #5153), and here the workers
    see from the ledgers when the grid is done."""
    import_optuna()
    from optuna.samplers import GridSampler

    class Grid(GridSampler):
        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            return None

    return Grid


def _run_processes(jobs: Sequence[WorkerJob]) -> None:
    """Start one worker process per job and wait for them all; a worker that dies is
    reported (its trial goes to another worker when its heartbeat stops)."""
    with tempfile.TemporaryDirectory(prefix="imdb-workers-") as folder:
        processes: list[tuple[WorkerJob, subprocess.Popen[bytes]]] = []
        for job in jobs:
            path = Path(folder) / f"{job.slot.name}.json"
            path.write_text(json.dumps(job.to_dict()), encoding="utf-8")
            command = [sys.executable, "-m", "imdb_cli.study.workers", "worker", str(path)]
            processes.append((job, subprocess.Popen(command, env=_worker_env(job.slot))))
        try:
            for job, process in processes:
                code = process.wait()
                if code != 0:
                    how = (
                        f"killed by {signal.Signals(-code).name}"
                        if code < 0 and -code in signal.valid_signals()
                        else f"exit status {code}"
                    )
                    warn(f"worker {job.slot.name} (pid {process.pid}) ended: {how}")
        except KeyboardInterrupt:
            _stop(process for _, process in processes)
            raise


def _stop(processes: Iterator[subprocess.Popen[bytes]]) -> None:
    """After Ctrl-C: the workers got it too (one process group) and mark their runs
    interrupted; one that is still there after a while is sent it again, then killed."""
    alive = list(processes)
    for signal_number in (None, signal.SIGINT, signal.SIGKILL):
        for process in alive:
            if signal_number is not None and process.poll() is None:
                process.send_signal(signal_number)
        deadline = time.monotonic() + 30
        for process in alive:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
        alive = [p for p in alive if p.poll() is None]
        if not alive:
            return


def _worker_env(slot: Slot) -> dict[str, str]:
    env = dict(os.environ)
    if slot.gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(slot.gpus)
    if slot.threads is not None:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(slot.threads)
    return env


def _write_record(workspace: Workspace, job: SweepJob) -> Path:
    plan = job.plan
    if isinstance(plan, SearchPlan):
        return write_search_record(workspace, plan).path
    states = [trial_result(workspace, plan.model, t.run_name, t.lr, t.seed) for t in plan.trials()]
    created = created_at(record_path(workspace, plan))
    return write_record(workspace, plan, states, job.commands, created)


def _read_record(workspace: Workspace, job: SweepJob) -> SweepRecord | SearchRecord:
    if isinstance(job.plan, SearchPlan):
        return write_search_record(workspace, job.plan)
    return read_record(workspace, _write_record(workspace, job))


# --------------------------------------------------------------------------- a worker


def say(message: str) -> None:
    """A trial's line: plain text, one line, whatever stderr is (off with --quiet)."""
    if _lines.on:
        err.print(message, highlight=False, markup=False, soft_wrap=True)


@dataclass
class Claim:
    trial: Any  # optuna.Trial, RUNNING and held by this worker
    key: Any  # what it trains: a grid's (rate, seed), or a search's slot


class SweepQueue:
    """One sweep's study as a worker sees it: the state of each of its keys (a grid point),
    claiming one, and running it. SearchQueue: the same for a TPE search's slots."""

    def __init__(self, storage: Any, job: SweepJob, workspace: Workspace, worker: str) -> None:
        optuna = import_optuna()
        self.optuna = optuna
        self.storage = storage
        self.job = job
        self.workspace = workspace
        self.workdir = str(workspace.root.resolve())
        self.worker = worker
        self.model = job.plan.model
        self.study = create_study(storage, job)
        self.states = optuna.trial.TrialState
        self.setup()

    # ------------------------------------------------------------------ the grid

    def setup(self) -> None:
        plan = self.job.plan
        assert isinstance(plan, SweepPlan)
        self.grid: dict[Point, Trial] = {(t.lr, t.seed): t for t in plan.trials()}
        self.keys: list[Any] = list(self.grid)
        self.distributions = {
            "lr": self.optuna.distributions.CategoricalDistribution(list(plan.rates)),
            "seed": self.optuna.distributions.CategoricalDistribution(list(plan.seeds)),
        }

    def key_of(self, trial: Any) -> Any:
        """The (rate, seed) of a trial: its parameters, or those it was queued with."""
        params = trial.params or trial.system_attrs.get("fixed_params") or {}
        if "lr" not in params or "seed" not in params:
            return None
        return float(params["lr"]), int(params["seed"])

    def run_name(self, key: Any) -> str:
        return self.grid[key].run_name

    def describe(self, key: Any) -> str:
        return f"{self.model} lr {format_rate(key[0])} seed {key[1]}"

    def describe_claim(self, claim: Claim) -> str:
        return self.describe(claim.key)

    def enqueue(self, key: Any, trials: Sequence[Any]) -> None:
        self.study.enqueue_trial({"lr": key[0], "seed": key[1]})

    def after_ask(self, trial: Any) -> Any:
        return self.key_of(trial)

    def trial_to_train(self, claim: Claim) -> Trial:
        return self.grid[claim.key]

    # ------------------------------------------------------------------ what is done

    def ledger(self, key: Any) -> TrialResult:
        return trial_result(self.workspace, self.model, self.run_name(key), 0.0, 0)

    def by_key(self) -> dict[Any, list[Any]]:
        grouped: dict[Any, list[Any]] = defaultdict(list)
        for trial in self.study.get_trials(deepcopy=False):
            key = self.key_of(trial)
            if key is not None:
                grouped[key].append(trial)
        return grouped

    def state(self, key: Any, trials: Sequence[Any]) -> str:
        """done, held (a live trial has it) or open."""
        if self.ledger(key).status in ("completed", "failed"):
            return DONE
        if any(t.state == self.states.COMPLETE for t in trials):
            return DONE  # completed elsewhere, its run folder in another workspace
        if any(is_live(t, self.states) for t in trials):
            return HELD
        failed = [
            t
            for t in trials
            if t.state == self.states.FAIL and t.user_attrs.get(OUTCOME) == "failed"
        ]
        # Where its ledger cannot be read, a failure elsewhere is final; here, the ledger
        # decides (a removed folder asks for the trial again, as without workers).
        if any(t.user_attrs.get(WORKDIR) != self.workdir for t in failed):
            return DONE
        if len(failed) >= MAX_ATTEMPTS:
            return DONE
        return OPEN

    def counts(self) -> tuple[int, int]:
        grouped = self.by_key()
        done = sum(self.state(k, grouped.get(k, [])) == DONE for k in self.keys)
        return done, len(self.keys)

    # ------------------------------------------------------------------ claiming

    def claim(self) -> Claim | str:
        """A trial of an open key, now held by this worker; else DONE or HELD."""
        while True:
            self.optuna.storages.fail_stale_trials(self.study)
            grouped = self.by_key()
            states = {k: self.state(k, grouped.get(k, [])) for k in self.keys}
            if all(s == DONE for s in states.values()):
                return DONE
            open_keys = [k for k in self.keys if states[k] == OPEN]
            trials = self.study.get_trials(deepcopy=False)
            # A queued trial (a dead worker's, queued again) holds its key until popped.
            waiting = any(
                t.state == self.states.WAITING and OUTCOME not in t.user_attrs for t in trials
            )
            if not open_keys and not waiting:
                return HELD
            reopened = [k for k in open_keys if grouped.get(k)]
            if not waiting and (len(trials) >= len(self.keys) or reopened):
                # The study has given out its new trials' numbers, or a key had a trial
                # that ended without a result (interrupted, its folder removed after a
                # failure): it goes on the queue.
                key = (reopened or open_keys)[0]
                self.enqueue(key, grouped.get(key, []))
            trial = self.study.ask(self.distributions)
            key = self.after_ask(trial)
            if key is None or self._stray(trial) or self._duplicate(trial.number, key):
                trial.set_user_attr(OUTCOME, "duplicate")
                self.study.tell(trial, state=self.states.FAIL, skip_if_finished=True)
                continue
            trial.set_user_attr(WORKER, self.worker)
            trial.set_user_attr(WORKDIR, self.workdir)
            return Claim(trial, key)

    def _stray(self, trial: Any) -> bool:
        """A new trial past the study's numbers (the queue emptied between a look and an
        ask): its key was drawn at random, so it may compete with one already held."""
        attrs = self.storage.get_trial_system_attrs(trial._trial_id)
        queued = "fixed_params" in attrs or "failed_trial" in attrs
        return trial.number >= len(self.keys) and not queued

    def _duplicate(self, number: int, key: Any) -> bool:
        """Whether the key is done, or held by a lower-numbered trial (its owner).

        A trial's key is known from its creation (queued with it, or following from its
        number), except for a moment while a new grid trial is given its point: a
        lower-numbered live trial without one yet is waited for."""
        for _ in range(50):
            trials = self.study.get_trials(deepcopy=False)
            if not any(
                is_live(t, self.states) and t.number < number and self.key_of(t) is None
                for t in trials
            ):
                break
            time.sleep(0.1)
        same = [t for t in self.by_key().get(key, []) if t.number != number]
        if self.state(key, same) == DONE:
            return True
        return any(is_live(t, self.states) and t.number < number for t in same)

    # ------------------------------------------------------------------ running

    def run(self, claim: Claim, job: WorkerJob) -> None:
        trial = self.trial_to_train(claim)
        path = self.workspace.model_runs(self.model) / trial.run_name
        name = self.describe_claim(claim)
        before = self.storage.get_trial_system_attrs(claim.trial._trial_id).get("failed_trial")
        with beating(self.storage, claim.trial._trial_id):
            _wait_unlocked(path, self.worker, name)
            now = self.ledger(claim.key)
            if now.status in ("completed", "failed"):
                self._tell(claim, now)
                return
            resume = path if now.status in ("running", "interrupted") else None
            how = "resuming its run from the last checkpoint" if resume else "from the start"
            event = "retried" if before is not None else "started"
            if before is not None:
                holder = self._holder(int(before))
                event += f" (trial {before}{f' of {holder}' if holder else ''} stopped)"
            elif resume is not None:
                event = "continued"
            done, total = self.counts()
            say(f"{self.worker}: {name} {event}, {how} ({done}/{total} done)")
            error = None
            try:
                if resume is None:
                    clear_unstarted(path)
                self._train(trial, resume, job)
            except KeyboardInterrupt:
                claim.trial.set_user_attr(OUTCOME, "interrupted")
                self.study.tell(claim.trial, state=self.states.FAIL, skip_if_finished=True)
                raise
            except ImdbError as exc:
                error = exc.message
            except Exception as exc:  # the ledger says failed; the other trials go on
                error = first_line(exc)
            self._tell(claim, self.ledger(claim.key), error)
        _write_record(self.workspace, self.job)

    def _train(self, trial: Trial, resume: Path | None, job: WorkerJob) -> None:
        if job.nproc_per_trial > 1:
            train_torchrun(self.workspace, self.job, trial, resume, job)
            return
        spec = registry.load_spec(self.job.spec_source)
        train_trial(self.workspace, spec, self.job.plan, trial, resume, use_wandb=job.use_wandb)

    def _tell(self, claim: Claim, result: TrialResult, error: str | None = None) -> None:
        """The trial's outcome as its ledger says: completed with its validation accuracy,
        or failed (the error kept: the ledger's, else `error`, which stopped it here)."""
        name = self.describe(claim.key)
        if result.status == "completed" and result.best_val_acc is not None:
            self.study.tell(claim.trial, result.best_val_acc, skip_if_finished=True)
            what = f"finished, val acc {result.best_val_acc:.4f}"
        else:
            error = result.error or error or f"its run is {result.status}"
            claim.trial.set_user_attr(OUTCOME, "failed")
            claim.trial.set_user_attr("imdb:error", error)
            self.study.tell(claim.trial, state=self.states.FAIL, skip_if_finished=True)
            what = f"failed: {error}"
        done, total = self.counts()
        say(f"{self.worker}: {name} {what} ({done}/{total} done)")

    def _holder(self, number: int) -> str | None:
        for trial in self.study.get_trials(deepcopy=False):
            if trial.number == number:
                return trial.user_attrs.get(WORKER)
        return None


class SearchQueue(SweepQueue):
    """A TPE search: N slots, each one run; a new trial numbered k < N is slot k and TPE
    draws its settings; a slot whose trial ended without a result is queued again with
    the settings it had."""

    def setup(self) -> None:
        plan = self.job.plan
        assert isinstance(plan, SearchPlan)
        self.search = plan
        self.keys = list(range(plan.trials))
        dist = self.optuna.distributions
        self.distributions = {
            name: dist.FloatDistribution(low, high, log=name == "lr")
            for name, low, high in plan.ranges
        }

    def key_of(self, trial: Any) -> Any:
        slot = trial.user_attrs.get(SLOT)
        if slot is not None:
            return int(slot)
        attrs = trial.system_attrs
        fresh = "fixed_params" not in attrs and "failed_trial" not in attrs
        return trial.number if fresh and trial.number < self.search.trials else None

    def run_name(self, key: Any) -> str:
        return self.search.run_name(int(key))

    def describe(self, key: Any) -> str:
        return f"{self.model} trial {int(key) + 1}/{self.search.trials}"

    def enqueue(self, key: Any, trials: Sequence[Any]) -> None:
        params = next((t.params for t in reversed(trials) if t.params), None)
        if params is None:  # never drawn: TPE draws them when it is asked
            params = {}
        self.study.enqueue_trial(params, user_attrs={SLOT: int(key)})

    def after_ask(self, trial: Any) -> Any:
        key = self.key_of(self.storage.get_trial(trial._trial_id))
        if key is not None:
            trial.set_user_attr(SLOT, int(key))  # kept by a retry of this trial
        return key

    def trial_to_train(self, claim: Claim) -> Trial:
        params = {name: float(value) for name, value in claim.trial.params.items()}
        return self.search.trial(int(claim.key), params)

    def describe_claim(self, claim: Claim) -> str:
        shown = ", ".join(
            f"{SEARCHED[n].lstrip('-')} {v:.3g}" for n, v in claim.trial.params.items()
        )
        return f"{self.describe(claim.key)} ({shown})"


def is_live(trial: Any, states: Any) -> bool:
    return trial.state in (states.WAITING, states.RUNNING) and OUTCOME not in trial.user_attrs


def _wait_unlocked(path: Path, worker: str, name: str) -> None:
    """A trainer here still holds the run (its worker's heartbeat came late): wait for it
    rather than train beside it."""
    from imdb_cli.runs.lock import is_locked  # torch

    said = False
    while is_locked(path):
        if not said:
            say(f"{worker}: {name}: its run is still being trained here; waiting for it")
            said = True
        time.sleep(heartbeat_seconds())


def work(job: WorkerJob) -> None:
    """A worker: claim, train, report, until every point of every sweep is done (waiting
    while other workers hold the last ones, as one may die)."""
    workspace = Workspace(Path(job.workdir))
    worker = f"{job.slot.name}@{socket.gethostname()} (pid {os.getpid()})"
    if job.slot.threads is not None:
        import torch

        torch.set_num_threads(job.slot.threads)
    queues: list[SweepQueue] = []

    def on_stale(study: Any, trial: Any) -> None:
        mine = [q for q in queues if q.job.study_name == study.study_name]
        key = mine[0].key_of(trial) if mine else None
        what = mine[0].describe(key) if key is not None else f"trial {trial.number}"
        holder = trial.user_attrs.get(WORKER, "its worker")
        say(f"{worker}: {what}: {holder} sent no heartbeat for a while; queued again")

    storage = _open_storage(job.storage, on_stale=on_stale)
    queues = [
        (SearchQueue if isinstance(sweep.plan, SearchPlan) else SweepQueue)(
            storage, sweep, workspace, worker
        )
        for sweep in job.sweeps
    ]
    waiting = False
    with _training_output(job.quiet_training):
        while True:
            states = []
            for queue in queues:
                got = queue.claim()
                if isinstance(got, Claim):
                    queue.run(got, job)
                    waiting = False
                    break
                states.append(got)
            else:
                if all(s == DONE for s in states):
                    return
                if not waiting:
                    say(f"{worker}: waiting for the trials other workers hold")
                    waiting = True
                time.sleep(min(5.0, heartbeat_seconds()))


@contextlib.contextmanager
def _training_output(quiet: bool) -> Iterator[None]:
    """Training's own bars and lines off (`quiet`) while the trial lines stay: several
    workers' bars on one terminal are unreadable (each run keeps its train.log)."""
    before = verbosity.quiet
    _lines.on = not before
    set_verbosity(quiet=quiet or before, verbose=verbosity.verbose)
    try:
        yield
    finally:
        set_verbosity(quiet=before, verbose=verbosity.verbose)


class _Lines:
    on = True


_lines = _Lines()


# --------------------------------------------------------------------------- torchrun


def train_torchrun(
    workspace: Workspace, sweep: SweepJob, trial: Trial, resume: Path | None, job: WorkerJob
) -> None:
    """One trial as a torchrun of `job.nproc_per_trial` processes on this worker's GPUs.
    Its settings are fixed in a file before torchrun starts; every rank reads that file."""
    settings = {
        "workdir": str(workspace.root.resolve()),
        "spec_source": sweep.spec_source,
        "sweep": sweep.to_dict(),
        "trial": {
            "lr": trial.lr,
            "seed": trial.seed,
            "run_name": trial.run_name,
            "config": trial.config.to_dict(),
        },
        "resume": str(resume) if resume is not None else None,
        "use_wandb": job.use_wandb,
        "worker": os.getpid(),
    }
    with tempfile.TemporaryDirectory(prefix="imdb-trial-") as folder:
        path = Path(folder) / "trial.json"
        path.write_text(json.dumps(settings), encoding="utf-8")
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            str(job.nproc_per_trial),
            "-m",
            "imdb_cli.study.workers",
            "rank",
            str(path),
        ]
        import torch

        # Each rank's share of this worker's threads (torchrun would set 1 and say so).
        threads = max(1, torch.get_num_threads() // job.nproc_per_trial)
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(threads))}
        code = subprocess.run(command, env=env, check=False).returncode
    if code != 0:
        raise ImdbError(f"torchrun of {trial.run_name} exited with status {code}")


def rank_main(path: Path) -> None:
    """One rank of a torchrun trial: the settings from the file, nothing asked of Optuna."""
    settings = json.loads(path.read_text(encoding="utf-8"))
    _die_with(int(settings["worker"]))
    sweep = SweepJob.from_dict(settings["sweep"])
    fixed = settings["trial"]
    config = TrainConfig.from_dict(fixed["config"], f"{path}: trial")
    trial = Trial(float(fixed["lr"]), int(fixed["seed"]), str(fixed["run_name"]), config)
    spec = registry.load_spec(str(settings["spec_source"]))
    set_verbosity(quiet=True, verbose=False)
    resume = settings["resume"]
    train_trial(
        Workspace(Path(settings["workdir"])),
        spec,
        sweep.plan,
        trial,
        Path(resume) if resume else None,
        use_wandb=bool(settings["use_wandb"]),
    )


def _die_with(pid: int) -> None:
    """End this process when `pid` ends (a killed worker leaves no trainer behind; its
    trial is resumed by another)."""

    def watch() -> None:
        while True:
            time.sleep(1.0)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(3)
            except PermissionError:
                continue

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _die_with_parent() -> None:
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: Sequence[str]) -> int:
    """`python -m imdb_cli.study.workers worker JOB.json | rank TRIAL.json`."""
    from imdb_cli.console import err as console

    if len(argv) != 2 or argv[0] not in ("worker", "rank"):
        console.print("usage: python -m imdb_cli.study.workers worker|rank FILE", markup=False)
        return 2
    try:
        if argv[0] == "rank":
            rank_main(Path(argv[1]))
            return 0
        job = WorkerJob.from_dict(json.loads(Path(argv[1]).read_text(encoding="utf-8")))
        if job.parent is not None:
            _die_with_parent()
        set_verbosity(quiet=job.quiet, verbose=False)
        work(job)
    except ImdbError as exc:
        console.print(f"[red]error:[/red] {exc.message}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a storage that went away: its trial is retried elsewhere
        console.print(f"[red]error:[/red] {first_line(exc)}", highlight=False, soft_wrap=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
