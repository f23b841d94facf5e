"""Learning-rate sweeps: trials are ordinary runs, selection uses validation only."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from handmade_ledgers import FINGERPRINT, write_run
from training_support import TINY, copy_workspace, tiny_config
from typer.testing import Result

from imdb_cli import registry
from imdb_cli.compare.comparison import compare
from imdb_cli.errors import ImdbError
from imdb_cli.runs import sweeps
from imdb_cli.runs.ledger import read_ledger
from imdb_cli.runs.run import latest_run
from imdb_cli.runs.select import select_run
from imdb_cli.runs.sweeps import SweepPlan, TrialResult
from imdb_cli.study import sweep
from imdb_cli.workspace import Workspace

RATES = (1e-4, 3e-3)
pytestmark = pytest.mark.usefixtures("single_thread")  # conftest.py


def done(lr: float, seed: int, val: float) -> TrialResult:
    return TrialResult(lr, seed, f"t-{lr}-{seed}", "completed", best_val_acc=val, best_epoch=1)


def test_the_rate_with_the_best_mean_validation_accuracy_over_seeds_wins() -> None:
    trials = [
        done(1e-5, 42, 0.90),
        done(1e-5, 43, 0.80),  # mean 0.85
        done(3e-5, 42, 0.86),
        done(3e-5, 43, 0.86),  # mean 0.86: wins though 1e-5 has the single best seed
    ]
    chosen = sweeps.select((1e-5, 3e-5), 2, trials)
    assert chosen.lr == 3e-5
    assert "0.8600 over 2 seed(s)" in chosen.reason


def test_a_tie_goes_to_the_smaller_rate() -> None:
    chosen = sweeps.select((2e-5, 5e-5), 1, [done(5e-5, 42, 0.875), done(2e-5, 42, 0.875)])
    assert chosen.lr == 2e-5 and "the smaller rate wins" in chosen.reason


def test_a_rate_counts_only_when_all_its_seeds_completed() -> None:
    trials = [
        done(1e-5, 42, 0.80),
        done(1e-5, 43, 0.81),
        done(1e-3, 42, 0.95),
        TrialResult(1e-3, 43, "t", "failed", error="loss is NaN"),
    ]
    chosen = sweeps.select((1e-5, 1e-3), 2, trials)
    assert chosen.lr == 1e-5
    assert "not considered: 0.001" in chosen.reason
    assert chosen.rates[1].problems == ["seed 43 failed (loss is NaN)"]
    nothing = sweeps.select((1e-3,), 2, trials[2:])
    assert nothing.lr is None and "every one failed" in nothing.reason


def test_nothing_is_selected_before_every_trial_has_run() -> None:
    pending = TrialResult(1e-3, 42, "t", "pending")
    chosen = sweeps.select((1e-5, 1e-3), 1, [done(1e-5, 42, 0.9), pending])
    assert chosen.lr is None
    assert chosen.reason.startswith("incomplete: 1 of 2 trials finished")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "at least one"),
        ("1e-5,abc", "separated by commas"),
        ("0,1e-5", "positive"),
        ("1e-5,1e-5", "repeated"),
    ],
)
def test_bad_grids_name_the_flag(text: str, says: str) -> None:
    with pytest.raises(ImdbError) as caught:
        sweeps.parse_rates(text)
    assert "--lr" in caught.value.message and says in caught.value.message


def test_each_trial_command_names_its_rate_and_seed_also_when_they_are_the_yamls(
    prepared_root: Path, tmp_path: Path
) -> None:
    workspace = copy_workspace(prepared_root, tmp_path / "ws")
    spec = registry.load_spec(TINY)
    yaml_lr, yaml_seed = spec.training.lr, spec.training.seed
    plan = sweep.make_plan(workspace, spec, tiny_config(epochs=1), (1e-4, yaml_lr), (yaml_seed,))
    commands = [
        str(sweep.trial_invocation(workspace, spec, plan, t)).split() for t in plan.trials()
    ]
    for command, trial in zip(commands, plan.trials(), strict=True):
        assert command[command.index("--lr") + 1] == str(trial.lr)
        assert command[command.index("--seed") + 1] == str(yaml_seed)


def test_a_sweep_trains_each_rate_as_a_run_selects_on_validation_and_resumes(
    prepared_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = copy_workspace(prepared_root, tmp_path / "ws")
    spec = registry.load_spec(TINY)
    base = tiny_config(epochs=1, limit_train=160)
    plan = sweep.make_plan(workspace, spec, base, RATES, (42,))
    record = sweep.train_sweep(workspace, spec, plan)
    # Each trial is an ordinary run, named after the sweep, rate and seed.
    vals = {}
    for trial in plan.trials():
        ledger = read_ledger(workspace.model_runs(TINY) / trial.run_name)
        assert ledger.status == "completed"
        assert (ledger.config.lr, ledger.config.seed) == (trial.lr, 42)
        assert ledger.data.data_fingerprint == plan.data_fingerprint
        vals[trial.lr] = ledger.best_val_acc
    best = max(RATES, key=lambda r: (vals[r], -r))
    assert record.selection.lr == best
    saved = json.loads(record.path.read_text())
    assert saved["selected_lr"] == best and saved["status"] == "completed"
    assert [t["command"] for t in saved["trials"]] == [
        str(sweep.trial_invocation(workspace, spec, plan, t)) for t in plan.trials()
    ]
    assert saved["trials"][0]["command"].endswith(
        f"train tiny-bert --epochs 1 --lr 0.0001 --device cpu --limit-train 160 --seed 42 "
        f"--run-name {plan.trials()[0].run_name} --data {plan.data_fingerprint}"
    )
    # Test accuracy never enters the record.
    assert "test" not in json.dumps(saved["per_rate"])

    # The same sweep again trains nothing.
    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished trial was trained again")

    import imdb_cli.commands.train  # noqa: F401  # bound to the real train before the patch
    from imdb_cli.training import loop

    monkeypatch.setattr(loop, "train", no_training)
    again = sweep.train_sweep(workspace, spec, plan)
    assert again.selection.lr == best and again.sweep_id == record.sweep_id

    # compare uses the selected rate's run and says how it was chosen.
    write_run(
        workspace,
        TINY,
        "later-run",
        labels=[0, 1],
        right=[True, True],
        created_at="2099-01-01T00:00:00+00:00",
    )
    comparison = compare(workspace, [TINY])
    (row,) = comparison.rows
    assert row.run_id == f"{plan.sweep_id}-lr{best:g}-seed42"
    assert row.sweep is not None and row.sweep.selected_lr == best
    assert (
        row.recipe.lr_selection
        == f"selected by sweep {plan.sweep_id} from 0.0001, 0.003 on validation"
    )
    assert [r.mean_val_acc for r in row.sweep.rates] == [vals[r] for r in RATES]


def test_a_trial_folder_killed_before_its_first_record_is_cleared_for_the_trial(
    tmp_path: Path,
) -> None:
    started = tmp_path / "sweep-1-lr0.001-seed42"
    (started / "encoder").mkdir(parents=True)
    (started / "config.yaml").write_text("name: tiny-bert\n")
    sweep.clear_unstarted(started)
    assert not started.exists()
    kept = tmp_path / "with-weights"
    (kept / "checkpoints").mkdir(parents=True)
    (kept / "checkpoints" / "epoch_1_acc_0.5000.safetensors").write_bytes(b"x")
    with pytest.raises(ImdbError, match="move it away"):
        sweep.clear_unstarted(kept)
    assert kept.is_dir()


def test_a_model_key_means_the_run_its_sweep_selected_in_every_command(
    workdir: Path, run_cli: Callable[..., Result]
) -> None:
    """After a sweep, the newest trial is not the model's run: the selected one is, for
    compare as for predict, evaluate, tsne, attention and export, and each says why."""
    space = Workspace(workdir)
    spec = registry.load_spec(TINY)
    plan = SweepPlan(TINY, (1e-4, 3e-3), (42, 43), spec.training, FINGERPRINT)
    vals = {(1e-4, 42): 0.8, (1e-4, 43): 0.9, (3e-3, 42): 0.6, (3e-3, 43): 0.7}
    for hour, trial in enumerate(plan.trials()):  # the last trial written is the newest
        write_run(
            space,
            TINY,
            trial.run_name,
            labels=[0, 1],
            right=[True, True],
            seed=trial.seed,
            best_val_acc=vals[(trial.lr, trial.seed)],
            created_at=f"2026-01-01T0{hour}:00:00+00:00",
        )
    states = [sweeps.trial_result(space, TINY, t.run_name, t.lr, t.seed) for t in plan.trials()]
    sweeps.write_record(space, plan, states, {}, "2026-01-01T00:00:00+00:00")
    newest = plan.trials()[-1].run_name
    best = next(t.run_name for t in plan.trials() if (t.lr, t.seed) == (1e-4, 43))
    assert latest_run(space, TINY) is not None and latest_run(space, TINY).run_id == newest
    selected = select_run(space, TINY)
    assert selected.run.run_id == best and "selected by sweep" in selected.why
    assert [r.run_id for r in selected.sweep_runs] == [
        t.run_name for t in plan.trials() if t.lr == 1e-4
    ]
    for command in (
        ["evaluate", TINY],
        ["predict", TINY, "--text", "Fine."],
        ["tsne", TINY],
        ["attention", "--review", "Fine.", "--models", TINY],
        ["export", TINY, "--out", str(workdir / "out")],
    ):
        result = run_cli(*command)  # handmade runs have no weights: the choice is said first
        assert f"{TINY}: {TINY}/{best} (lr 0.0001 selected by sweep" in result.output, command
    compared = run_cli("compare", TINY, "--format", "json")
    assert json.loads(compared.stdout)["models"][0]["run_id"] == best
