"""Fault injection while training: a full or read-only disk at each write, two trainers on
one run, damaged caches, killed writes, resumes with other options, recovery hints. Each
fault is one red line naming what failed and where, the ledger records it, and what was
written before is still there (earlier checkpoints load, a resume finishes the run)."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from cli_support import assert_one_red_line
from data_support import REPO
from fault_support import enospc, fill, free_up, full_disk, leftover_temps, read_only
from handmade_ledgers import write_run
from training_support import TINY, copy_workspace

from imdb_cli.runs import checkpoints
from imdb_cli.runs.caches import prepare_invocation
from imdb_cli.runs.ledger import LEDGER_NAME, Ledger, read_ledger
from imdb_cli.runs.lock import LOCK_NAME
from imdb_cli.runs.run import list_runs
from imdb_cli.workspace import Workspace

pytestmark = pytest.mark.usefixtures("single_thread")  # conftest.py

FAST = ("--limit-train", "16", "--eval-batch-size", "64", "--device", "cpu")


def _runs(space: Workspace) -> list[Path]:
    return sorted(p for p in space.model_runs(TINY).glob("*/") if p.is_dir())


def _interrupted(run_cli: Callable, space: Workspace, name: str, epochs: int = 2) -> Path:
    """A run of `epochs` stopped (as by a kill) after epoch 1: its ledger says running."""
    result = run_cli("train", TINY, *FAST, "--epochs", "1", "--run-name", name)
    assert result.exit_code == 0, result.output
    run_dir = space.model_runs(TINY) / name
    document = json.loads((run_dir / "ledger.json").read_text())
    document.update(status="running", test=None)
    document["config"]["epochs"] = epochs
    (run_dir / "ledger.json").write_text(json.dumps(document))
    return run_dir


# --------------------------------------------------------------------------- the disk


def _fsync_fails_for(monkeypatch: pytest.MonkeyPatch, pattern: str, times: int = 1) -> None:
    """The disk fills up when a file whose name matches `pattern` is flushed (`times` times)."""
    real = os.fsync
    left = {"n": times}

    def fsync(fd: int) -> None:
        name = os.readlink(f"/proc/self/fd/{fd}")
        if left["n"] and re.search(pattern, Path(name).name):
            left["n"] -= 1
            raise enospc()
        real(fd)

    monkeypatch.setattr("imdb_cli.files.os.fsync", fsync)


@pytest.mark.parametrize(
    ("write", "pattern", "epochs_kept"),
    [
        ("weights", r"epoch_2_acc_.*\.safetensors", 1),
        ("training state", r"epoch_2\.state\.pt", 1),
        ("ledger", r"ledger\.json", 0),
    ],
)
def test_a_full_disk_at_each_write_of_training(
    run_cli: Callable,
    prepared: Workspace,
    monkeypatch: pytest.MonkeyPatch,
    write: str,
    pattern: str,
    epochs_kept: int,
) -> None:
    _fsync_fails_for(monkeypatch, pattern)
    result = run_cli("train", TINY, *FAST, "--epochs", "2", "--run-name", "full")
    assert_one_red_line(result, "no space left on device while writing", str(prepared.runs))
    run_dir = prepared.model_runs(TINY) / "full"
    ledger = read_ledger(run_dir)
    assert ledger.status == "failed" and "no space left" in (ledger.error or "")
    assert len(ledger.epochs) == epochs_kept
    for record in ledger.epochs:  # what was written before the fault still loads
        checkpoints.read_weights(run_dir / record.checkpoint, record.weights_sha256)
    assert leftover_temps(run_dir) == []
    monkeypatch.undo()
    resumed = run_cli("train", TINY, *FAST, "--epochs", "2", "--resume", "auto")
    assert resumed.exit_code == 0, resumed.output
    assert read_ledger(run_dir).status == "completed"
    assert [p.name for p in _runs(prepared)] == ["full"]


def test_a_real_full_disk_during_training_then_resume(
    run_cli: Callable, prepared_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The workspace on a 40 MB tmpfs with 12 MB left: epoch 1's weights (8 MB) fit, its
    training state (16 MB of Adam moments) does not."""
    disk = tmp_path / "disk"
    with full_disk(disk, size="40m", leave_free=1 << 30):  # empty while the cache goes in
        space = copy_workspace(prepared_root, disk / "ws")
        fill(disk, leave_free=12 << 20)
        monkeypatch.setenv("IMDB_WORKDIR", str(space.root))
        result = run_cli("--workdir", str(space.root), "train", TINY, *FAST, "--epochs", "1")
        assert_one_red_line(result, "no space left on device while writing", "epoch_1.state.pt")
        (run_dir,) = _runs(space)
        ledger = read_ledger(run_dir)
        assert ledger.status == "failed" and "epoch_1.state.pt" in (ledger.error or "")
        assert leftover_temps(space.root) == []
        free_up(disk)
        resumed = run_cli(
            "--workdir", str(space.root), "train", TINY, *FAST, "--epochs", "1", "--resume", "auto"
        )
        assert resumed.exit_code == 0, resumed.output
        assert read_ledger(run_dir).status == "completed"


@pytest.mark.parametrize("resume", [False, True])
def test_a_read_only_workspace_for_train(
    run_cli: Callable, prepared: Workspace, resume: bool
) -> None:
    if resume:
        run_dir = _interrupted(run_cli, prepared, "ro")
        before = (run_dir / "ledger.json").read_text()
    with read_only(prepared.root):
        args = ("--resume", "auto") if resume else ()
        result = run_cli("train", TINY, *FAST, "--epochs", "2", *args)
    assert_one_red_line(result, str(prepared.root))
    assert "read-only" in result.output.lower()
    if resume:
        assert (run_dir / "ledger.json").read_text() == before  # nothing half-changed


def test_prepare_onto_a_full_disk(
    run_cli: Callable, tmp_path: Path, synthetic_imdb_dir: Path
) -> None:
    with full_disk(tmp_path / "disk", size="1m", leave_free=16 << 10) as disk:
        prepare = ["--workdir", str(disk / "ws"), "prepare", "--models", TINY]
        prepare += ["--data-dir", str(synthetic_imdb_dir)]
        result = run_cli(*prepare)
        assert_one_red_line(result, "no space left on device while writing", str(disk / "ws"))
        assert leftover_temps(disk) == []
        free_up(disk)
        result = run_cli(*prepare)
        assert result.exit_code == 0, result.output


def test_prepare_into_a_read_only_workspace(
    run_cli: Callable, workdir: Path, synthetic_imdb_dir: Path
) -> None:
    workdir.mkdir(parents=True)
    with read_only(workdir):
        result = run_cli("prepare", "--models", TINY, "--data-dir", str(synthetic_imdb_dir))
    assert_one_red_line(result, str(workdir))
    assert "read-only" in result.output.lower()


# --------------------------------------------------------------------------- two trainers


def _hold_lock(run_dir: Path) -> subprocess.Popen[str]:
    """Another process that trains the run: it holds the run's lock until it is killed."""
    code = (
        "import sys, time; from pathlib import Path; "
        "from imdb_cli.runs.lock import _try_lock; "
        "h = _try_lock(Path(sys.argv[1])); print('locked', flush=True); time.sleep(120)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(run_dir)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def test_a_second_trainer_of_a_run_stops_naming_the_first_and_a_kill_frees_it(
    run_cli: Callable, prepared: Workspace
) -> None:
    run_dir = _interrupted(run_cli, prepared, "busy")
    before = (run_dir / "ledger.json").read_text()
    holder = _hold_lock(run_dir)
    try:
        for resume in ("auto", str(run_dir)):
            result = run_cli("train", TINY, *FAST, "--epochs", "2", "--resume", resume)
            assert_one_red_line(result, "is being trained by process", str(holder.pid))
        assert (run_dir / "ledger.json").read_text() == before  # not trained by the second
        assert [p.name for p in _runs(prepared)] == ["busy"]  # nor a new run started
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The OS released the killed holder's lock: no stale lock to clean by hand.
    result = run_cli("train", TINY, *FAST, "--epochs", "2", "--resume", "auto")
    assert result.exit_code == 0, result.output
    assert read_ledger(run_dir).status == "completed" and (run_dir / LOCK_NAME).is_file()


def test_two_resumes_started_together_train_the_run_once(prepared: Workspace, run_cli) -> None:
    # Seven epochs to go: the winner still trains when the other (started with it) arrives.
    run_dir = _interrupted(run_cli, prepared, "race", epochs=8)
    command = [
        sys.executable,
        "-m",
        "imdb_cli",
        "--workdir",
        str(prepared.root),
        "--quiet",
        "train",
        TINY,
        *FAST,
        "--epochs",
        "8",
        "--resume",
        "auto",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    both = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    results = [(p.wait(timeout=600), *p.communicate()) for p in both]
    codes = sorted(code for code, _, _ in results)
    assert codes[0] == 0 and codes[1] != 0, results
    refused = next(err for code, _, err in results if code != 0)
    assert "is being trained by process" in refused and "Traceback" not in refused
    assert read_ledger(run_dir).status == "completed"
    assert [p.name for p in _runs(prepared)] == ["race"]
    assert "resumed" in (run_dir / "train.log").read_text()


# --------------------------------------------------------------------------- killed writes


def test_leftovers_of_killed_writes_are_cleaned_when_the_model_trains_next(
    run_cli: Callable, prepared: Workspace
) -> None:
    run_dir = _interrupted(run_cli, prepared, "kept")
    dead = 2**22 + 12345  # no such process
    temps = [
        run_dir / f".tmp-ledger.json-{dead}-abcd1234",
        run_dir / "checkpoints" / f".tmp-epoch_2_acc_0.5000.safetensors-{dead}-abcd1234",
    ]
    for temp in temps:
        temp.write_bytes(b"half a file")
    orphan = prepared.model_runs(TINY) / "20260101-000000-seed42"  # killed before its ledger
    (orphan / "encoder").mkdir(parents=True)
    (orphan / "config.yaml").write_text("name: tiny-bert\n")
    os.utime(orphan, (time.time() - 3600, time.time() - 3600))
    result = run_cli("train", TINY, *FAST, "--epochs", "2", "--resume", "auto")
    assert result.exit_code == 0, result.output
    assert not orphan.exists() and f"removed {orphan}" in " ".join(result.output.split())
    assert not any(t.exists() for t in temps)
    assert read_ledger(run_dir).status == "completed"


def test_a_kill_at_the_first_ledger_write_leaves_nothing_a_command_trips_on(
    run_cli: Callable, prepared: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # as a kill right there, minus the process's death

    monkeypatch.setattr("imdb_cli.training.loop.write_ledger", killed)
    result = run_cli("train", TINY, *FAST, "--epochs", "1")
    assert result.exit_code != 0
    monkeypatch.undo()
    (orphan,) = _runs(prepared)
    assert not (orphan / "ledger.json").exists()
    assert list_runs(prepared, TINY) == []  # not a run: no ledger
    result = run_cli("compare")
    assert_one_red_line(result, "no completed runs in")


# --------------------------------------------------------------------------- read back


def _damage_cache(space: Workspace, array: str, value: int) -> Path:
    (cache,) = space.cache.glob("*/berttokenizer-*")
    path = cache / f"train_{array}.npy"
    data = np.load(path)
    data.flat[5] = value  # the same size: a length check cannot see it
    np.save(path, data)
    return cache


@pytest.mark.parametrize(
    ("array", "value", "says"),
    [
        ("input_ids", 999_999, "token ids outside the vocabulary"),
        ("input_ids", -3, "token ids outside the vocabulary"),
        ("lengths", 4096, "review lengths outside 1..128"),
        ("lengths", 0, "review lengths outside 1..128"),
    ],
)
def test_a_cache_damaged_at_the_same_size_is_named_before_training(
    run_cli: Callable, prepared: Workspace, array: str, value: int, says: str
) -> None:
    cache = _damage_cache(prepared, array, value)
    result = run_cli("train", TINY, *FAST, "--epochs", "1")
    assert_one_red_line(result, str(cache), says, "rerun `imdb prepare`")
    assert _runs(prepared) == []  # refused before a run folder was made


def test_evaluation_with_a_non_finite_loss_fails(run_cli: Callable, prepared: Workspace) -> None:
    result = run_cli("train", TINY, *FAST, "--epochs", "1", "--run-name", "nan")
    assert result.exit_code == 0, result.output
    run_dir = prepared.model_runs(TINY) / "nan"
    ledger = json.loads((run_dir / "ledger.json").read_text())
    weights_path = run_dir / ledger["epochs"][0]["checkpoint"]
    import torch
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(weights_path))
    tensors["head.bias"] = torch.full_like(tensors["head.bias"], float("nan"))
    save_file(tensors, str(weights_path))
    ledger["epochs"][0]["weights_sha256"] = checkpoints.file_sha256(weights_path)
    (run_dir / "ledger.json").write_text(json.dumps(ledger))
    result = run_cli("evaluate", str(run_dir))
    assert_one_red_line(result, "the loss is nan")


# --------------------------------------------------------------------------- resume options


def test_resume_with_a_differing_option_is_refused_naming_it(
    run_cli: Callable, prepared: Workspace
) -> None:
    result = run_cli("train", TINY, *FAST, "--epochs", "1", "--lr", "0.002", "--run-name", "r")
    assert result.exit_code == 0, result.output
    run_dir = prepared.model_runs(TINY) / "r"
    document = json.loads((run_dir / "ledger.json").read_text())
    document.update(status="interrupted", test=None)
    (run_dir / "ledger.json").write_text(json.dumps(document))
    # 0.001 is tiny-bert's YAML value: given explicitly, it still differs from the run's.
    result = run_cli("train", TINY, *FAST, "--epochs", "1", "--lr", "0.001", "--resume", "auto")
    assert_one_red_line(result, "--lr 0.001 (run has 0.002)", "resume without --lr")
    assert read_ledger(run_dir).status == "interrupted"
    result = run_cli("train", TINY, *FAST, "--epochs", "1", "--resume", "auto")
    assert result.exit_code == 0, result.output


# --------------------------------------------------------------------------- hints


def test_the_cache_is_gone_hint_rebuilds_the_cache_the_run_used(
    run_cli: Callable, workdir: Path, synthetic_imdb_dir: Path
) -> None:
    prepared = run_cli(
        "prepare",
        "--models",
        TINY,
        "--limit",
        "150",
        "--seed",
        "7",
        "--data-dir",
        str(synthetic_imdb_dir),
    )
    assert prepared.exit_code == 0, prepared.output
    result = run_cli("train", TINY, *FAST, "--epochs", "1", "--run-name", "h")
    assert result.exit_code == 0, result.output
    space = Workspace(workdir)
    fingerprint = read_ledger(space.model_runs(TINY) / "h").data.data_fingerprint
    import shutil

    shutil.rmtree(space.cache)
    result = run_cli("evaluate", f"{TINY}/h")
    assert_one_red_line(result, "is gone; recreate it with")
    command = re.search(r"`(imdb prepare [^`]+)`", result.output)
    assert command is not None and "--limit 150" in command.group(1)
    assert "--seed 7" in command.group(1)
    rebuilt = run_cli(*shlex.split(command.group(1))[1:])  # followed as printed
    assert rebuilt.exit_code == 0, rebuilt.output
    assert (space.cache / fingerprint).is_dir()
    assert run_cli("evaluate", f"{TINY}/h").exit_code == 0


def test_the_hint_of_an_older_ledger_reads_the_sample_size_from_its_fingerprint(
    workdir: Path,
) -> None:
    run_dir = write_run(Workspace(workdir), "minilm", "old", labels=[0, 1], right=[True, True])
    document = json.loads((run_dir / LEDGER_NAME).read_text())
    data = document["data"]
    tokenization = data.pop("tokenization")
    data |= {"max_length": 256, "truncation": "head+tail", "split_seed": 42}
    data["data_fingerprint"] = "abc-limit3000-keepdups"
    del tokenization
    for key in ("dataset", "labels", "num_classes", "limit", "keep_duplicates", "source"):
        data.pop(key, None)
    document["schema_version"] = 1
    ledger = Ledger.from_dict(document, "ledger.json")
    assert str(prepare_invocation(ledger)) == (
        "imdb prepare --models minilm --max-length 256 --truncation head+tail "
        "--seed 42 --limit 3000 --keep-duplicates"
    )


def test_train_prepare_keeps_the_data_set_already_prepared(
    run_cli: Callable, workdir: Path, synthetic_imdb_dir: Path
) -> None:
    first = run_cli(
        "prepare", "--models", TINY, "--limit", "150", "--data-dir", str(synthetic_imdb_dir)
    )
    assert first.exit_code == 0, first.output
    (entry,) = [p for p in (workdir / "cache").glob("*") if p.is_dir()]
    # Another length needs another cache: --prepare makes it from the same 150 reviews.
    result = run_cli(
        "train",
        TINY,
        *FAST,
        "--epochs",
        "1",
        "--max-length",
        "64",
        "--prepare",
        "--data-dir",
        str(synthetic_imdb_dir),
        "--run-name",
        "p",
    )
    assert result.exit_code == 0, result.output
    ledger = read_ledger(workdir / "runs" / TINY / "p")
    assert ledger.data.data_fingerprint == entry.name
    assert [p.name for p in (workdir / "cache").glob("*") if p.is_dir()] == [entry.name]


def test_prepare_gives_up_on_an_unreachable_hub_at_once(
    run_cli: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    from imdb_cli import registry

    def unreachable(*args: object, **kwargs: object) -> None:
        raise OSError("Network is unreachable")

    registry.go_offline_if_hub_unreachable.cache_clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "")  # restored when the test ends
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(socket, "create_connection", unreachable)
    try:
        result = run_cli("prepare", "--models", TINY)
        assert_one_red_line(result, "--data-dir")
        assert os.environ.get("HF_HUB_OFFLINE") == "1"  # offline after one failed attempt
    finally:
        registry.go_offline_if_hub_unreachable.cache_clear()
