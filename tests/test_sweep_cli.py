"""`imdb sweep` from the command line: trials, the printed commands, SIGKILL and resume."""

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

import pytest
from cli_support import assert_one_red_line
from data_support import REPO
from training_support import epochs_done
from typer.testing import Result

from imdb_cli.runs.ledger import read_ledger
from imdb_cli.runs.run import list_runs
from imdb_cli.runs.sweeps import latest_selected
from imdb_cli.workspace import Workspace

TINY = "tiny-bert"
RATES = "1e-4,3e-3"
OPTIONS = ("--epochs", "2", "--limit-train", "200", "--device", "cpu")
pytestmark = pytest.mark.usefixtures("single_thread")  # conftest.py


def sweep_command(workdir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "imdb_cli",
        "--workdir",
        str(workdir),
        "--quiet",
        "sweep",
        TINY,
        "--lr",
        RATES,
        *OPTIONS,
        *extra,
    ]


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def record_of(workdir: Path) -> dict:  # type: ignore[type-arg]
    (path,) = (workdir / "sweeps" / TINY).glob("*.json")
    return json.loads(path.read_text())


def test_a_sweep_killed_mid_trial_resumes_that_trial_and_reruns_nothing_finished(
    prepared: Workspace,
) -> None:
    workdir = prepared.root
    process = subprocess.Popen(
        sweep_command(workdir), env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 480
    second = None
    while time.monotonic() < deadline and process.poll() is None:
        records = list((workdir / "sweeps" / TINY).glob("*.json"))
        trials = json.loads(records[0].read_text())["trials"] if records else []
        if len(trials) == 2:
            candidate = workdir / "runs" / TINY / trials[1]["run_name"]
            if epochs_done(candidate) == 1:  # the second trial is in its second epoch
                second = candidate
                break
        time.sleep(0.02)
    assert second is not None, "the second trial never finished an epoch"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    record = record_of(workdir)
    first = workdir / "runs" / TINY / record["trials"][0]["run_name"]
    assert read_ledger(first).status == "completed"
    assert read_ledger(second).status == "running" and record["selected_lr"] is None
    first_log = (first / "train.log").read_text()

    again = subprocess.run(
        sweep_command(workdir), env=env(), capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0, again.stderr
    assert (first / "train.log").read_text() == first_log  # finished: not run again
    assert "resumed" in (second / "train.log").read_text()  # killed: resumed, not restarted
    resumed = read_ledger(second)
    assert resumed.status == "completed" and [e.epoch for e in resumed.epochs] == [1, 2]
    assert sorted(p.name for p in (workdir / "runs" / TINY).iterdir()) == sorted(
        t["run_name"] for t in record["trials"]
    )
    record = record_of(workdir)
    vals = {
        t["lr"]: read_ledger(workdir / "runs" / TINY / t["run_name"]).best_val_acc
        for t in record["trials"]
    }
    assert record["selected_lr"] == max(vals, key=lambda r: (vals[r], -r))
    assert record["status"] == "completed"


def test_dry_run_prints_each_trials_command_and_compare_finds_the_trials_run_elsewhere(
    prepared: Workspace, run_cli: Callable[..., Result]
) -> None:
    result = run_cli(
        "sweep",
        TINY,
        "--lr",
        RATES,
        "--epochs",
        "1",
        "--limit-train",
        "120",
        "--device",
        "cpu",
        "--dry-run",
    )
    assert result.exit_code == 0, result.output
    commands = [line for line in result.stdout.splitlines() if line.startswith("imdb ")]
    record = record_of(prepared.root)
    assert commands == [t["command"] for t in record["trials"]] and len(commands) == 2
    assert not (prepared.root / "runs").exists()  # nothing trained
    # As on another machine: each printed command, run as it is.
    for command in commands:
        args = shlex.split(command)[1:]
        if args[0] == "--workdir":  # written when the workspace is not the default one
            assert args[1] == str(prepared.root)
            args = args[2:]
        ran = run_cli(*args, "--quiet")
        assert ran.exit_code == 0, ran.output
    compared = run_cli("compare", TINY, "--format", "json")
    assert compared.exit_code == 0, compared.output
    (row,) = json.loads(compared.stdout)["models"]
    vals = {
        t["lr"]: read_ledger(prepared.root / "runs" / TINY / t["run_name"]).best_val_acc
        for t in record["trials"]
    }
    best = max(vals, key=lambda r: (vals[r], -r))
    assert row["sweep"]["selected_lr"] == best
    assert row["recipe"]["settings"]["lr"] == best
    assert [r["mean_val_acc"] for r in row["sweep"]["rates"]] == [vals[r] for r in sorted(vals)]
    table = run_cli("compare", TINY).stdout
    assert "Learning rates, chosen on validation accuracy" in table and "selected" in table


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--lr", "1e-4,fast"), "--lr"),
        (("--lr", "1e-4", "--seeds", "42,42"), "--seeds"),
        (("--lr", "1e-4", "--epochs", "0"), "--epochs"),
        (("--lr", "1e-4", "--data", "nope"), "nope"),
    ],
)
def test_bad_sweep_input_is_one_red_line(
    prepared: Workspace, run_cli: Callable[..., Result], args: tuple[str, ...], says: str
) -> None:
    assert_one_red_line(run_cli("sweep", TINY, *args), says)


def test_reproduce_with_rates_sweeps_each_model_and_reports_the_selection(
    run_cli: Callable[..., Result], workdir: Path, synthetic_imdb_dir: Path
) -> None:
    models = ("tiny-bert", "tiny-modernbert")
    result = run_cli(
        "reproduce",
        "--models",
        ",".join(models),
        "--data-dir",
        str(synthetic_imdb_dir),
        "--epochs",
        "1",
        "--lr",
        RATES,
        "--no-analysis",
    )
    assert result.exit_code == 0, result.output
    workspace = Workspace(workdir)
    text = (workdir / "report.md").read_text()
    assert "### Learning rates, chosen on validation" in text
    assert "(report-figures/learning_rates.png)" in text
    for model in models:
        assert len(list_runs(workspace, model)) == 2  # one run per rate
        record = latest_selected(workspace, model)
        assert record is not None and record.selection.lr is not None
        vals = {t.lr: t.best_val_acc for t in record.trials}
        assert record.selection.lr == max(vals, key=lambda r: (vals[r] or 0, -r))
        lr = f"{record.selection.lr:g}"
        assert re.search(
            rf"\| {model} \| {re.escape(lr)} \| [0-9.]+ \([0-9.]+–[0-9.]+\) \| 1/1 \| selected \|",
            text,
        )
        assert re.search(rf"{model}: .*; chose {re.escape(lr)} on [0-9,]+ validation reviews", text)
        assert f"{lr} ({record.describe()})" in text
        assert f"imdb --workdir {workdir} sweep {model} --lr 0.0001,0.003 --epochs 1" in text
    # Both rates were chosen on validation, so the rate is not a "different recipe".
    assert "--lr " not in " ".join(
        line for line in text.splitlines() if "different recipes" in line
    )
