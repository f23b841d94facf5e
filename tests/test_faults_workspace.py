"""Fault injection in the workspace: links planted among the runs, pickles in place of
checkpoints, a termination signal mid-training, a --workdir that is no folder. Each is one
red line (or a clean stop), and nothing outside the workspace is written."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
import torch
from analysis_support import imdb
from cli_support import assert_one_red_line
from fault_support import leftover_temps

from imdb_cli.errors import ImdbError
from imdb_cli.files import open_no_follow
from imdb_cli.runs.checkpoints import CHECKPOINT_DIR
from imdb_cli.runs.folder import LOG_NAME
from imdb_cli.runs.ledger import read_ledger
from imdb_cli.runs.lock import LOCK_NAME, tidy_model_runs
from imdb_cli.runs.run import latest_run
from imdb_cli.workspace import Workspace

pytestmark = pytest.mark.usefixtures("single_thread")  # conftest.py
PRECIOUS = b"the user's own file, outside the workspace\n"


@pytest.fixture
def precious(tmp_path: Path) -> Path:
    path = tmp_path / "outside" / "precious.txt"
    path.parent.mkdir()
    path.write_bytes(PRECIOUS)
    return path


def _unfinished(space: Workspace) -> Path:
    """The trained tiny-bert run, made resumable: 2 epochs asked, 1 done, status running."""
    run = latest_run(space, "tiny-bert")
    assert run is not None
    document = json.loads((run.path / "ledger.json").read_text())
    document.update(status="running", test=None)
    document["config"]["epochs"] = 2
    (run.path / "ledger.json").write_text(json.dumps(document))
    return run.path


@pytest.mark.parametrize("planted", [LOCK_NAME, LOG_NAME])
def test_a_link_planted_in_a_run_never_lets_train_write_outside(
    trained_workspace: Workspace, precious: Path, planted: str
) -> None:
    run_dir = _unfinished(trained_workspace)
    (run_dir / planted).unlink(missing_ok=True)
    (run_dir / planted).symlink_to(precious)
    result = imdb(
        trained_workspace, "train", "tiny-bert", "--resume", str(run_dir), "--device", "cpu"
    )
    assert_one_red_line(result, str(run_dir / planted), "symbolic link")
    assert precious.read_bytes() == PRECIOUS
    assert read_ledger(run_dir).epochs  # the run is as it was


def test_a_checkpoints_folder_that_is_a_link_is_refused(
    trained_workspace: Workspace, tmp_path: Path
) -> None:
    run_dir = _unfinished(trained_workspace)
    elsewhere = tmp_path / "elsewhere"
    shutil.move(run_dir / CHECKPOINT_DIR, elsewhere)
    (run_dir / CHECKPOINT_DIR).symlink_to(elsewhere, target_is_directory=True)
    before = sorted(p.name for p in elsewhere.iterdir())
    result = imdb(
        trained_workspace, "train", "tiny-bert", "--resume", str(run_dir), "--device", "cpu"
    )
    assert_one_red_line(result, str(run_dir / CHECKPOINT_DIR), "symbolic link")
    assert sorted(p.name for p in elsewhere.iterdir()) == before


def test_tidying_the_runs_never_follows_a_link(tmp_path: Path, precious: Path) -> None:
    """A ledger-less run folder is removed by the tidying before a training; one that is a
    link, or whose lock is a link, is left alone with what it points at."""
    space = Workspace(tmp_path / "ws")
    runs = space.model_runs("tiny-bert")
    runs.mkdir(parents=True)
    outside = precious.parent
    stale = outside / ".tmp-ledger.json-999999999-0123abcd"  # a dead pid's temp name
    stale.write_text("not imdb's")
    (runs / "linked").symlink_to(outside, target_is_directory=True)
    locked = runs / "locked-by-a-link"
    locked.mkdir()
    (locked / LOCK_NAME).symlink_to(precious)
    killed = runs / "killed"
    killed.mkdir()
    (killed / ".tmp-ledger.json-999999999-0123abcd").write_text("{")
    old = time.time() - 3600
    for folder in (locked, killed):
        os.utime(folder, (old, old))
    tidy_model_runs(space, "tiny-bert")
    assert precious.read_bytes() == PRECIOUS and stale.exists()
    assert (runs / "linked").is_symlink() and locked.is_dir()
    assert not killed.exists()  # a real ledger-less folder still goes


def test_a_fifo_where_a_lock_belongs_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / LOCK_NAME
    os.mkfifo(fifo)
    with pytest.raises(ImdbError, match="not a regular file"):
        open_no_follow(fifo, os.O_RDWR | os.O_CREAT)
    assert leftover_temps(tmp_path) == []


# --------------------------------------------------------------------------- pickles


class _Evil:
    """Unpickling this would run `print`: what a hostile pickle does with a real command."""

    def __reduce__(self) -> tuple:
        return (print, ("a pickle ran code",))


def test_a_checkpoint_that_is_a_pickle_is_refused_in_one_line(
    trained_workspace: Workspace, tmp_path: Path
) -> None:
    run = latest_run(trained_workspace, "tiny-bert")
    assert run is not None
    pickled = tmp_path / "weights.pt"
    torch.save({"encoder.weight": torch.zeros(2), "hook": _Evil()}, pickled)
    result = imdb(trained_workspace, "evaluate", str(run.path), "--checkpoint", str(pickled))
    assert_one_red_line(result, str(pickled), "is a pickle", "refused")
    assert "weights_only" not in result.output and "a pickle ran code" not in result.output


def test_a_training_state_that_is_a_hostile_pickle_is_refused_in_one_line(
    trained_workspace: Workspace,
) -> None:
    run_dir = _unfinished(trained_workspace)
    state = run_dir / CHECKPOINT_DIR / "epoch_1.state.pt"
    torch.save({"step": 1, "hook": _Evil()}, state)
    result = imdb(
        trained_workspace, "train", "tiny-bert", "--resume", str(run_dir), "--device", "cpu"
    )
    assert_one_red_line(result, str(state), "pickled Python objects", "refused")
    assert "weights_only=False" not in result.output and "a pickle ran code" not in result.output
    assert "Traceback" not in result.output


# --------------------------------------------------------------------------- signals


def test_sigterm_during_training_ends_like_ctrl_c(
    prepared: Workspace, run_cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from imdb_cli.training import loop

    real = loop.Trainer._train_epoch

    def terminated_in_epoch_2(self: loop.Trainer, epoch: int) -> loop.EpochResult:
        if epoch == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(self, epoch)

    monkeypatch.setattr(loop.Trainer, "_train_epoch", terminated_in_epoch_2)
    args = ("train", "tiny-bert", "--limit-train", "16", "--device", "cpu", "--epochs", "2")
    result = run_cli(*args, "--run-name", "stopped")
    assert result.exit_code == 143
    assert_one_red_line(result, "terminated (SIGTERM)")
    ledger = read_ledger(prepared.model_runs("tiny-bert") / "stopped")
    assert (ledger.status, ledger.error) == ("interrupted", "interrupted (SIGTERM)")
    assert [e.epoch for e in ledger.epochs] == [1]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored after the command
    monkeypatch.undo()
    resumed = run_cli(*args, "--resume", "auto")
    assert resumed.exit_code == 0, resumed.output
    assert read_ledger(prepared.model_runs("tiny-bert") / "stopped").status == "completed"


# --------------------------------------------------------------------------- run config


@pytest.mark.parametrize(
    ("command", "model_type", "says"),
    [
        ("evaluate", "no-such-model", "does not recognize this architecture"),
        ("evaluate", None, "model type `None`"),
        ("evaluate", "t5", "classifier_dropout"),  # huggingface_hub's validation error
        ("evaluate", "speecht5_hifigan", "Unrecognized configuration class"),
        ("predict", "speecht5_hifigan", "Unrecognized configuration class"),
        ("export", "speecht5_hifigan", "Unrecognized configuration class"),
    ],
)
def test_a_damaged_run_config_is_one_red_line(
    trained_workspace: Workspace, tmp_path: Path, model_type: str | None, says: str, command: str
) -> None:
    run = latest_run(trained_workspace, "tiny-bert")
    assert run is not None
    path = run.path / "encoder" / "config.json"
    document = json.loads(path.read_text())
    document["model_type"] = model_type
    path.write_text(json.dumps(document))
    args = {
        "evaluate": ["evaluate", str(run.path)],
        "predict": ["predict", str(run.path), "--text", "fine"],
        "export": ["export", str(run.path), "--out", str(tmp_path / "out")],
    }[command]
    result = imdb(trained_workspace, *args)
    assert_one_red_line(result, "encoder", "cannot load its", says)
    assert len(result.output.splitlines()[-1]) < 600  # transformers' list of every model, cut
    assert not (tmp_path / "out").exists()


def test_a_workdir_that_is_a_file_is_named(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from imdb_cli.cli import app

    afile = tmp_path / "notes.txt"
    afile.write_text("mine")
    for args in (["compare"], ["predict", "tiny-bert", "--text", "fine"]):
        result = CliRunner().invoke(app, ["--workdir", str(afile), *args])
        assert_one_red_line(result, f"--workdir {afile}", "is a file, not a folder")
    assert afile.read_text() == "mine"
