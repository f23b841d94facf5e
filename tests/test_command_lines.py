"""Command lines are written in one place (commands/lines.py) from the options the CLI
declares: every command the core suggests or records parses back, through the CLI's own
parser, to the values the core meant."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from imdb_cli import registry
from imdb_cli.cli import app
from imdb_cli.commands import lines
from imdb_cli.config import Invocation
from imdb_cli.errors import ImdbError
from imdb_cli.runs.sweeps import SweepPlan
from imdb_cli.study.reproduce import StudyOptions, reproduce_invocation, sweep_invocation
from imdb_cli.study.sweep import trial_invocation
from imdb_cli.workspace import Workspace


def parsed(line: str) -> tuple[Path | None, str, dict[str, Any]]:
    """What the CLI makes of a command line: its --workdir, command and parameters."""
    words = shlex.split(line)
    assert words[0] == "imdb", line
    words = words[1:]
    workdir = None
    if words[0] == "--workdir":
        workdir, words = Path(words[1]), words[2:]
    command = lines._command(words[0])
    context = command.make_context(words[0], words[1:])
    return workdir, words[0], context.params


def test_each_kind_of_option_is_written_as_its_command_declares_it(tmp_path: Path) -> None:
    invocation = Invocation(
        "train",
        ("tiny-bert",),
        (
            ("lr", 1.25e-4),
            ("adam_betas", (0.8, 0.95)),
            ("tf32", False),
            ("group_by_length", True),
            ("run_name", "a name with spaces"),
        ),
        tmp_path / "work space",
    )
    line = str(invocation)
    assert "--no-tf32" in line and "--group-by-length" in line
    assert "--adam-betas 0.8 0.95" in line and "--lr 0.000125" in line
    workdir, command, params = parsed(line)
    assert (workdir, command) == (tmp_path / "work space", "train")
    assert params["model"] == "tiny-bert" and params["run_name"] == "a name with spaces"
    assert params["lr"] == 1.25e-4 and params["adam_betas"] == (0.8, 0.95)
    assert params["tf32"] is False and params["group_by_length"] is True


def test_a_repeatable_option_is_repeated() -> None:
    line = str(Invocation("predict", ("tiny-bert",), (("text", ["Great.", "Awful."]),)))
    assert list(parsed(line)[2]["text"]) == ["Great.", "Awful."]


def test_an_option_the_command_does_not_take_is_a_bug_not_a_hint() -> None:
    with pytest.raises(ValueError, match="takes no option 'learning_rate'"):
        str(Invocation("train", ("tiny-bert",), (("learning_rate", 1.0),)))


def test_a_hint_names_the_workspace_only_when_the_command_would_not_find_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMDB_WORKDIR", str(tmp_path))
    here, elsewhere = Workspace(tmp_path), Workspace(tmp_path / "other")
    assert str(Invocation("compare", workdir=here.as_option())) == "imdb compare"
    hint = str(Invocation("compare", workdir=elsewhere.as_option()))
    assert hint == f"imdb --workdir {elsewhere.root} compare"


def test_the_reproduce_and_sweep_commands_of_a_study_parse_back(tmp_path: Path) -> None:
    options = StudyOptions(
        models=("minilm", "tiny-modernbert"),
        limit=3000,
        split_seed=7,
        seeds=(42, 43),
        rates=(2e-5, 8e-5),
        overrides={"epochs": 1, "group_by_length": True, "device": "cpu"},
        tsne_samples=100,
        analysis=False,
    )
    workspace = Workspace(tmp_path / "w")
    workdir, command, params = parsed(str(reproduce_invocation(workspace, options)))
    assert (workdir, command) == (workspace.root, "reproduce")
    assert params["models"] == "minilm,tiny-modernbert" and params["seeds"] == "42,43"
    assert params["lr"] == "2e-05,8e-05" and params["limit"] == 3000
    assert params["split_seed"] == 7 and params["tsne_samples"] == 100
    assert params["epochs"] == 1 and params["group_by_length"] is True
    assert params["analysis"] is False
    rates = options.rates or ()
    _, command, params = parsed(str(sweep_invocation(workspace, "minilm", options, rates)))
    assert (command, params["model"], params["lr"]) == ("sweep", "minilm", "2e-05,8e-05")


def test_a_sweep_trial_command_trains_that_trial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = registry.load_spec("tiny-bert")
    base = spec.training.with_overrides(epochs=1, device="cpu")
    plan = SweepPlan("tiny-bert", (3e-3, 3e-2), (42, 7), base, "abc123-limit400")
    workspace = Workspace(tmp_path / "w")
    trial = plan.trials()[-1]
    line = str(trial_invocation(workspace, spec, plan, trial))
    seen: list[Any] = []

    def capture(workspace: Workspace, spec: Any, config: Any, **options: Any) -> None:
        seen.append((workspace.root, config, options))
        raise ImdbError("parsed")

    monkeypatch.setattr("imdb_cli.commands.train.train_model", capture)
    result = CliRunner().invoke(app, shlex.split(line)[1:])
    assert "error: parsed" in result.output, result.output
    [(root, config, options)] = seen
    assert root == workspace.root and config == trial.config
    assert options["run_name"] == trial.run_name
    assert options["data_fingerprint"] == "abc123-limit400"


def test_a_runs_own_command_trains_that_run_again(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from handmade_ledgers import write_run

    from imdb_cli.runs.ledger import read_ledger
    from imdb_cli.runs.run import Run

    run_dir = write_run(
        Workspace(workdir), "tiny-bert", "r7", labels=[0, 1], right=[True, True], seed=7
    )
    run = Run(run_dir, read_ledger(run_dir))
    seen: list[Any] = []

    def capture(workspace: Workspace, spec: Any, config: Any, **options: Any) -> None:
        seen.append((config, options))
        raise ImdbError("parsed")

    monkeypatch.setattr("imdb_cli.commands.train.train_model", capture)
    line = str(run.train_invocation())
    result = CliRunner().invoke(app, shlex.split(line)[1:])
    assert "error: parsed" in result.output, result.output
    [(config, options)] = seen
    assert config == run.ledger.config
    assert options["run_name"] == "r7"
    assert options["data_fingerprint"] == run.ledger.data.data_fingerprint
