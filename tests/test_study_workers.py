"""Trials side by side through an Optuna study: each (rate, seed) claimed once, by worker
processes on one journal or by separate commands on one PostgreSQL database; a worker
killed mid-trial has its trial resumed by another."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_support import follow_pip_hint
from data_support import REPO
from postgres_support import postgres_server
from training_support import epochs_done
from typer.testing import Result

from imdb_cli.errors import ImdbError
from imdb_cli.runs.ledger import read_ledger
from imdb_cli.study import storage as study_storage
from imdb_cli.study.storage import StorageChoice
from imdb_cli.workspace import Workspace

optuna = pytest.importorskip("optuna")

TINY = "tiny-bert"
OPTIONS = ("--limit-train", "32", "--device", "cpu")
pytestmark = pytest.mark.usefixtures("single_thread")  # conftest.py


def sweep_command(workdir: Path, rates: str, seeds: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "imdb_cli",
        "--workdir",
        str(workdir),
        "sweep",
        TINY,
        "--lr",
        rates,
        "--seeds",
        seeds,
        *OPTIONS,
        *extra,
    ]


def env(**more: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **more}


def record_of(workdir: Path) -> dict:  # type: ignore[type-arg]
    (path,) = (workdir / "sweeps" / TINY).glob("*.json")
    return json.loads(path.read_text())


def completed_points(study: optuna.Study) -> Counter[tuple[float, int]]:
    done = optuna.trial.TrialState.COMPLETE
    return Counter(
        (float(t.params["lr"]), int(t.params["seed"])) for t in study.trials if t.state == done
    )


def journal_study(workdir: Path, record: dict) -> optuna.Study:  # type: ignore[type-arg]
    backend = optuna.storages.journal.JournalFileBackend(
        str(workdir / "sweeps" / "studies.journal")
    )
    return optuna.load_study(
        study_name=f"{TINY}/{record['sweep_id']}",
        storage=optuna.storages.JournalStorage(backend),
    )


def sessions(run_dir: Path) -> int:
    """How many times a run was started (train.log's first line of each training)."""
    return (run_dir / "train.log").read_text().count(" training tiny-bert run ")


# --------------------------------------------------------------------------- storage


def test_the_storage_is_a_journal_in_the_workspace_a_path_or_a_database_url(
    tmp_path: Path,
) -> None:
    space = Workspace(tmp_path / "ws")
    default = StorageChoice.parse(None, space)
    assert default == StorageChoice(str(space.root.resolve() / "sweeps/studies.journal"), "journal")
    shared = StorageChoice.parse(str(tmp_path / "nfs" / "s.journal"), space)
    assert shared.kind == "journal" and shared.url == str(tmp_path / "nfs" / "s.journal")
    database = StorageChoice.parse("postgresql://me:secret@db:5432/studies", space)
    assert database.kind == "rdb" and database.describe() == "postgresql://me:***@db:5432/studies"
    with pytest.raises(ImdbError, match="SQLite is not made for parallel workers"):
        StorageChoice.parse("sqlite:///s.db", space)
    with pytest.raises(ImdbError, match="a journal file path or a postgresql:// URL"):
        StorageChoice.parse("redis://host", space)


@pytest.mark.parametrize("workers", ["0", "-2"])
def test_workers_below_one_are_refused_before_any_work(
    run_cli: Callable[..., Result], workdir: Path, workers: str
) -> None:
    result = run_cli("sweep", "tiny-bert", "--lr", "1e-4", "--workers", workers)
    assert result.exit_code != 0
    assert f"--workers must be at least 1 (got {workers})" in result.output
    assert not (workdir / "runs").exists()  # nothing trained


def test_without_optuna_the_error_names_a_pip_install_that_works(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(ImdbError) as caught:
        study_storage.import_optuna()
    assert "optuna>=4.9" in follow_pip_hint(caught.value.message)  # followed as written


def test_a_trial_without_heartbeats_is_failed_by_optunas_fail_stale_trials_and_queued_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(study_storage.HEARTBEAT_VARIABLE, "1")  # a grace of 4 s
    choice = StorageChoice(str(tmp_path / "s.journal"), "journal")
    seen: list[int] = []
    storage = study_storage.open_storage(choice, on_stale=lambda study, t: seen.append(t.number))
    study = optuna.create_study(study_name="s", storage=storage)
    dead = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    alive = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    with study_storage.beating(storage, alive._trial_id):
        time.sleep(study_storage.GRACE_FACTOR + 1.5)
        optuna.storages.fail_stale_trials(study)  # Optuna's own, on our journal
    states = {t.number: t.state for t in study.trials}
    assert seen == [dead.number]
    assert states[dead.number] == optuna.trial.TrialState.FAIL
    assert states[alive.number] == optuna.trial.TrialState.RUNNING
    (retry,) = [t for t in study.trials if t.state == optuna.trial.TrialState.WAITING]
    assert retry.params == dead.params and retry.system_attrs["failed_trial"] == dead.number


CLAIMER = """
import sys, time
from pathlib import Path
from imdb_cli import registry
from imdb_cli.study.storage import StorageChoice, open_storage
from imdb_cli.study.workers import SweepJob, SweepQueue
from imdb_cli.study.sweep import SweepPlan
from imdb_cli.workspace import Workspace

plan = SweepPlan("tiny-bert", tuple(float(r) for r in range(1, 5)), tuple(range(6)),
                 registry.load_spec("tiny-bert").training, "nodata")
storage = open_storage(StorageChoice(sys.argv[1], "journal"))
queue = SweepQueue(storage, SweepJob("tiny-bert", plan), Workspace(Path(sys.argv[2])), "w")
while True:
    got = queue.claim()
    if got == "done":
        break
    if got == "held":
        time.sleep(0.05)
        continue
    queue.study.tell(got.trial, 0.5)
"""


def test_two_processes_claiming_from_one_journal_get_each_point_of_the_grid_once(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "s.journal"
    claimers = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(CLAIMER), str(journal), str(tmp_path / "ws")],
            env=env(),
        )
        for _ in range(2)
    ]
    assert [p.wait(timeout=120) for p in claimers] == [0, 0]
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))
    )
    (summary,) = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    done = completed_points(study)
    assert sorted(done) == [(float(r), s) for r in range(1, 5) for s in range(6)]
    assert set(done.values()) == {1}  # no point completed twice
    others = [t for t in study.trials if t.state != optuna.trial.TrialState.COMPLETE]
    assert all(t.user_attrs["imdb:outcome"] == "duplicate" for t in others)


# --------------------------------------------------------------------------- training


def test_two_worker_processes_sharing_one_journal_run_each_trial_of_a_grid_once(
    prepared: Workspace, run_cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    workdir = prepared.root
    command = sweep_command(workdir, "1e-4,3e-4,1e-3,3e-3", "1,2", "--epochs", "1")
    ran = subprocess.run(
        [*command, "--workers", "2"], env=env(), capture_output=True, text=True, timeout=600
    )
    assert ran.returncode == 0, ran.stderr
    record = record_of(workdir)
    names = sorted(t["run_name"] for t in record["trials"])
    assert len(names) == 8 and sorted(os.listdir(workdir / "runs" / TINY)) == names
    for name in names:
        assert read_ledger(workdir / "runs" / TINY / name).status == "completed"
        assert sessions(workdir / "runs" / TINY / name) == 1  # trained once, never again
    assert record["status"] == "completed" and record["selected_lr"] is not None
    study = journal_study(workdir, record)
    assert set(completed_points(study).values()) == {1} and len(completed_points(study)) == 8
    lines = [line for line in ran.stderr.splitlines() if " started, " in line]
    assert len(lines) == 8 and {line.split(":")[0][:2] for line in lines} == {"w1", "w2"}
    assert "(8/8 done)" in ran.stderr

    # The same sweep without workers finds every trial done: it trains nothing and its
    # record says what the workers' said.
    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished trial was trained again")

    import imdb_cli.commands.train  # noqa: F401  # bound to the real train before the patch
    from imdb_cli.training import loop

    monkeypatch.setattr(loop, "train", no_training)
    again = run_cli("sweep", TINY, "--lr", "1e-4,3e-4,1e-3,3e-3", "--seeds", "1,2",
                    "--epochs", "1", *OPTIONS)  # fmt: skip
    assert again.exit_code == 0, again.output
    after = record_of(workdir)
    same = ("trials", "per_rate", "selected_lr", "why", "status", "created_at")
    assert {k: after[k] for k in same} == {k: record[k] for k in same}


def test_two_sweep_commands_on_one_postgresql_database_share_the_trials(
    prepared_root: Path, tmp_path: Path
) -> None:
    machines = [tmp_path / "machine-a", tmp_path / "machine-b"]
    for machine in machines:  # two workspaces, as on two machines without a shared disk
        shutil.copytree(prepared_root / "cache", machine / "cache")
    with postgres_server() as url:
        commands = [
            subprocess.Popen(
                [*sweep_command(m, "1e-4,1e-3", "1,2", "--epochs", "1"), "--storage", url],
                env=env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for m in machines
        ]
        outputs = [c.communicate(timeout=600) for c in commands]
        assert [c.returncode for c in commands] == [0, 0], outputs
        record = record_of(machines[0])
        storage = optuna.storages.RDBStorage(url.replace("postgresql:", "postgresql+psycopg2:"))
        study = optuna.load_study(study_name=f"{TINY}/{record['sweep_id']}", storage=storage)
        assert completed_points(study) == Counter({(r, s): 1 for r in (1e-4, 1e-3) for s in (1, 2)})
        storage.engine.dispose()
    # Each trial ran on one machine only; together they hold the whole grid once.
    held = [sorted(os.listdir(m / "runs" / TINY)) for m in machines if (m / "runs").exists()]
    every = sorted(name for names in held for name in names)
    assert every == sorted(t["run_name"] for t in record["trials"])
    for machine in machines:
        for name in os.listdir(machine / "runs" / TINY):
            assert read_ledger(machine / "runs" / TINY / name).status == "completed"


def test_a_worker_killed_mid_trial_has_its_trial_resumed_by_the_other(
    prepared: Workspace,
) -> None:
    workdir = prepared.root
    command = sweep_command(workdir, "1e-3", "1,2", "--epochs", "2", "--workers", "1")
    beat = env(IMDB_STUDY_HEARTBEAT="1")
    victim = subprocess.Popen(command, env=beat, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # the victim claims first
    survivor = subprocess.Popen(
        command, env=beat, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    killed = None
    deadline = time.monotonic() + 300
    while killed is None and time.monotonic() < deadline and victim.poll() is None:
        for run_dir in (workdir / "runs" / TINY).glob("*"):
            lock = run_dir / "train.lock"
            holder = lock.read_text() if lock.exists() else ""
            if f"process {victim.pid} " in holder and epochs_done(run_dir) == 1:
                killed = run_dir
                break
        time.sleep(0.05)
    assert killed is not None, "the victim never finished an epoch of a trial"
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    _, err = survivor.communicate(timeout=600)
    assert survivor.returncode == 0, err
    assert "sent no heartbeat for a while; queued again" in err
    assert " retried (trial " in err
    record = record_of(workdir)
    names = sorted(t["run_name"] for t in record["trials"])
    assert sorted(os.listdir(workdir / "runs" / TINY)) == names  # one folder per trial
    for name in names:
        assert read_ledger(workdir / "runs" / TINY / name).status == "completed"
    log = (killed / "train.log").read_text()
    assert "resumed" in log and sessions(killed) == 1  # resumed from epoch 1, not restarted
    assert [e.epoch for e in read_ledger(killed).epochs] == [1, 2]
    assert record["status"] == "completed"
    study = journal_study(workdir, record)
    assert completed_points(study) == Counter({(1e-3, 1): 1, (1e-3, 2): 1})


def test_a_tpe_search_draws_each_runs_settings_in_the_ranges_and_selects_on_validation(
    prepared: Workspace, run_cli: Callable[..., Result]
) -> None:
    args = ("sweep", TINY, "--search", "tpe", "--lr", "1e-4:3e-3", "--seeds", "5",
            "--epochs", "1", *OPTIONS)  # fmt: skip
    result = run_cli(*args, "--trials", "2", "--workers", "1")
    assert result.exit_code == 0, result.output
    (path,) = (prepared.root / "sweeps" / TINY).glob("tpe-*.json")
    record = json.loads(path.read_text())
    assert [r["run_name"] for r in record["results"]] == [
        f"{record['sweep_id']}-trial001",
        f"{record['sweep_id']}-trial002",
    ]
    accs = {}
    for entry in record["results"]:
        ledger = read_ledger(prepared.root / "runs" / TINY / entry["run_name"])
        assert ledger.status == "completed" and ledger.config.seed == 5
        assert 1e-4 <= ledger.config.lr <= 3e-3 and entry["params"]["lr"] == ledger.config.lr
        accs[entry["run_name"]] = ledger.best_val_acc
    assert record["selected"] == max(accs, key=lambda name: (accs[name], -int(name[-3:])))
    assert "test" not in json.dumps(record["results"])
    assert "selected" in result.stdout
    bad = run_cli(*args)  # no --trials
    assert bad.exit_code != 0 and "--trials 20" in bad.output


@pytest.mark.slow
def test_a_trial_with_nproc_per_trial_is_one_torchrun_whose_ranks_train_that_trial(
    prepared: Workspace,
) -> None:
    workdir = prepared.root
    command = sweep_command(workdir, "1e-3", "7", "--epochs", "1", "--nproc-per-trial", "2")
    ran = subprocess.run(command, env=env(), capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stderr
    (name,) = os.listdir(workdir / "runs" / TINY)
    ledger = read_ledger(workdir / "runs" / TINY / name)
    assert ledger.status == "completed" and ledger.environment["world_size"] == 2
    assert (ledger.config.lr, ledger.config.seed) == (1e-3, 7)
