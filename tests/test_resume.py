"""Resume: a run killed mid-epoch continues to exactly where an uninterrupted run would be."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from data_support import REPO
from training_support import TINY, copy_workspace, one_thread, tiny_config

from imdb_cli import registry
from imdb_cli.config import TrainConfig
from imdb_cli.runs import checkpoints
from imdb_cli.runs.ledger import read_ledger
from imdb_cli.training.loop import Trainer, train
from imdb_cli.workspace import Workspace

pytestmark = pytest.mark.usefixtures("single_thread")  # conftest.py

SETTINGS = {"epochs": 2, "limit_train": 240}
METRICS = ("epoch", "train_loss", "train_acc", "train_samples", "val_loss", "val_acc", "lr")


def _train_command(workdir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "imdb_cli",
        "--workdir",
        str(workdir),
        "--quiet",
        "train",
        TINY,
        "--epochs",
        str(SETTINGS["epochs"]),
        "--limit-train",
        str(SETTINGS["limit_train"]),
        "--device",
        "cpu",
        *extra,
    ]


def _env() -> dict[str, str]:
    # One thread: the same arithmetic in every process, and no OpenMP contention.
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _ledger_epochs(run_dir: Path) -> int:
    try:
        return len(json.loads((run_dir / "ledger.json").read_text())["epochs"])
    except (OSError, ValueError):
        return 0


def _only_run(workdir: Path) -> Path:
    (run_dir,) = (workdir / "runs" / TINY).iterdir()
    return run_dir


def test_resume_after_kill_matches_uninterrupted_run(prepared_root: Path, tmp_path: Path) -> None:
    reference = copy_workspace(prepared_root, tmp_path / "reference")
    killed = copy_workspace(prepared_root, tmp_path / "killed").root
    # The uninterrupted run, in this process (also one thread): the same arithmetic.
    expected = train(reference, registry.load_spec(TINY), tiny_config(**SETTINGS)).ledger

    process = subprocess.Popen(
        _train_command(killed), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 240
    run_dir = None
    while time.monotonic() < deadline and process.poll() is None:
        runs = list((killed / "runs" / TINY).glob("*/"))
        if runs and _ledger_epochs(runs[0]) == 1:  # epoch 1's checkpoint is complete
            run_dir = runs[0]
            break
        time.sleep(0.02)
    assert run_dir is not None, "epoch 1 never finished"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    stopped = read_ledger(run_dir)
    assert stopped.status == "running" and len(stopped.epochs) == 1  # killed during epoch 2

    resumed = subprocess.run(
        _train_command(killed, "--resume", "auto"),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert _only_run(killed) == run_dir  # continued the same run, made no new one

    got = read_ledger(run_dir)
    assert got.status == "completed"
    for want, have in zip(expected.epochs, got.epochs, strict=True):
        assert [getattr(want, f) for f in METRICS] == [getattr(have, f) for f in METRICS]
    assert expected.test is not None and got.test is not None
    assert (expected.test.loss, expected.test.probs) == (got.test.loss, got.test.probs)
    want_weights = checkpoints.read_weights(
        _only_run(reference.root) / expected.epochs[-1].checkpoint
    )
    have_weights = checkpoints.read_weights(run_dir / got.epochs[-1].checkpoint)
    assert want_weights.keys() == have_weights.keys()
    for name, tensor in want_weights.items():
        assert torch.equal(tensor, have_weights[name]), name
    assert "resumed" in (run_dir / "train.log").read_text()


def _interrupted_run(
    workspace: Workspace,
    config: TrainConfig,
    name: str,
    epoch: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Train run `name` of tiny-bert, stopped by Ctrl-C at the start of epoch `epoch`."""
    real = Trainer._train_epoch

    def interrupted(self, number: int):
        if number == epoch:
            raise KeyboardInterrupt
        return real(self, number)

    monkeypatch.setattr(Trainer, "_train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(workspace, registry.load_spec(TINY), config, run_name=name)
    monkeypatch.undo()
    one_thread()


def test_resume_with_another_seed_warns_and_keeps_the_runs_settings(
    prepared_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    workspace = copy_workspace(prepared_root, tmp_path / "ws")
    spec = registry.load_spec(TINY)
    _interrupted_run(workspace, tiny_config(limit_train=16, epochs=2), "r", 2, monkeypatch)
    assert read_ledger(workspace.runs / TINY / "r").status == "interrupted"
    capsys.readouterr()

    run = train(workspace, spec, tiny_config(limit_train=16, epochs=2, seed=7), resume="auto")
    warning = capsys.readouterr().err
    assert "--seed 7 (run has 42)" in " ".join(warning.split())
    assert run.path == workspace.runs / TINY / "r" and run.ledger.status == "completed"
    assert run.ledger.config.seed == 42 and [e.epoch for e in run.ledger.epochs] == [1, 2]


def test_resume_of_a_run_with_no_finished_epoch_starts_it_over(
    prepared_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = copy_workspace(prepared_root, tmp_path / "ws")
    spec, config = registry.load_spec(TINY), tiny_config(limit_train=16, epochs=1)
    _interrupted_run(workspace, config, "early", 1, monkeypatch)
    run = train(workspace, spec, config, resume="auto")
    reference = train(workspace, spec, config)
    assert run.run_id == "early" and run.ledger.status == "completed"
    assert run.ledger.epochs[0].val_loss == reference.ledger.epochs[0].val_loss


def test_resume_auto_with_nothing_unfinished_starts_a_new_run(
    prepared_root: Path, tmp_path: Path
) -> None:
    workspace: Workspace = copy_workspace(prepared_root, tmp_path / "ws")
    spec, config = registry.load_spec(TINY), tiny_config(limit_train=8, epochs=1)
    first = train(workspace, spec, config)
    second = train(workspace, spec, config, resume="auto")
    assert first.run_id != second.run_id and second.ledger.status == "completed"


def test_a_running_ledger_whose_process_died_is_resumed_whatever_its_pid(
    prepared_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Liveness comes from the run's lock (tests/test_faults_training.py), not from a pid
    in the ledger, which a reused pid would fool: here the recorded pid is alive."""
    workspace = copy_workspace(prepared_root, tmp_path / "ws")
    spec, config = registry.load_spec(TINY), tiny_config(limit_train=16, epochs=2)
    _interrupted_run(workspace, config, "busy", 2, monkeypatch)
    ledger_path = workspace.runs / TINY / "busy" / "ledger.json"
    document = json.loads(ledger_path.read_text())
    document["status"] = "running"  # killed without a word
    document["environment"]["pid"] = os.getpid()  # a pid that is alive (reused)
    ledger_path.write_text(json.dumps(document))
    resumed = train(workspace, spec, config, resume="auto")
    assert resumed.run_id == "busy" and resumed.ledger.status == "completed"


# --------------------------------------------------------------------------- W&B


class _FakeWandbRun:
    """What `wandb.init` returns, recording what is logged (one per session)."""

    def __init__(self, run_id: str) -> None:
        self.id = run_id
        self.logs: list[tuple[int, dict]] = []
        self.summary: dict = {}

    def log(self, metrics: dict, step: int) -> None:
        self.logs.append((step, dict(metrics)))

    def finish(self, exit_code: int = 0) -> None:
        pass


def test_a_resumed_run_continues_its_wandb_run_on_one_increasing_step(
    prepared_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed in epoch 2 after logging step 44, resumed from epoch 1 (step 24): the same W&B
    run goes on, and the steps redone up to 44 are not logged a second time."""
    wandb = pytest.importorskip("wandb")
    workspace = copy_workspace(prepared_root, tmp_path / "ws")
    spec, config = registry.load_spec(TINY), tiny_config(limit_train=48, batch_size=2, epochs=2)
    sessions: list[tuple[dict, _FakeWandbRun]] = []

    def init(**kwargs):
        sessions.append((kwargs, _FakeWandbRun(kwargs.get("id") or "w4nd8id")))
        return sessions[-1][1]

    monkeypatch.setattr(wandb, "init", init)
    real_flush = Trainer._flush

    def flush_then_stop(self, meter, *args):
        real_flush(self, meter, *args)
        if self.step == 44:  # the first flush of epoch 2 (24 steps per epoch)
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_flush", flush_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train(workspace, spec, config, run_name="w", use_wandb=True)
    monkeypatch.setattr(Trainer, "_flush", real_flush)
    one_thread()
    stopped = read_ledger(workspace.runs / TINY / "w")
    assert stopped.status == "interrupted" and len(stopped.epochs) == 1
    assert (stopped.wandb_run_id, stopped.wandb_last_step) == ("w4nd8id", 44)

    run = train(workspace, spec, config, resume="auto", use_wandb=True)
    assert run.run_id == "w" and run.ledger.status == "completed"
    (first, first_run), (second, second_run) = sessions
    assert first["name"] == second["name"] == "w"  # no `-resumed` twin
    assert first["id"] is None and (second["id"], second["resume"]) == ("w4nd8id", "allow")
    assert run.ledger.wandb_run_id == "w4nd8id" and run.ledger.wandb_last_step == 48
    before = [step for step, _ in first_run.logs]
    after = [step for step, _ in second_run.logs]
    assert before == [20, 24, 24, 44] and after == [48, 48, 48]
    steps = before + after
    assert steps == sorted(steps)  # one axis, never backwards
    assert "val/acc" in second_run.logs[1][1] and "test/acc" in second_run.logs[2][1]


def _wandb_history(run_file: Path) -> tuple[str, str, list[int]]:
    """(run id, display name, logged steps) of an offline W&B run file (run-<id>.wandb).

    The file is W&B's record log: a 7-byte header, then 32 KiB blocks of records (CRC32,
    length, type: 1 full, 2 first, 3 middle, 4 last), each a `Record` protobuf."""
    import struct

    from wandb.proto import wandb_internal_pb2 as pb

    data = run_file.read_bytes()
    block, position, pending = 32768, 7, b""
    run_id, name, steps = "", "", []
    while position + 7 <= len(data):
        left = block - position % block
        if left < 7:
            position += left
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        if length == 0 and kind == 0:
            position += left
            continue
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            pending = b""
            if record.WhichOneof("record_type") == "history":
                steps.append(record.history.step.num)
            elif record.WhichOneof("record_type") == "run":
                run_id, name = record.run.run_id, record.run.display_name
    return run_id, name, steps


def test_offline_wandb_resume_writes_to_the_same_run(
    prepared_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    workspace = copy_workspace(prepared_root, tmp_path / "ws")
    spec, config = registry.load_spec(TINY), tiny_config(limit_train=48, batch_size=2, epochs=2)
    real = Trainer._train_epoch

    def interrupted(self, number: int):
        if number == 2:
            raise KeyboardInterrupt
        return real(self, number)

    monkeypatch.setattr(Trainer, "_train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(workspace, spec, config, run_name="off", use_wandb=True)
    monkeypatch.setattr(Trainer, "_train_epoch", real)
    one_thread()
    run = train(workspace, spec, config, resume="auto", use_wandb=True)
    assert run.ledger.status == "completed" and run.ledger.wandb_run_id

    files = sorted((run.path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 2  # one per session, both of the same W&B run
    histories = [_wandb_history(path) for path in files]
    assert {(run_id, name) for run_id, name, _ in histories} == {(run.ledger.wandb_run_id, "off")}
    steps = [step for _, _, logged in histories for step in logged]
    assert steps == sorted(steps) and steps[-1] == 48 and histories[1][2][0] > 24
