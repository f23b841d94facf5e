"""One definition per training option: TrainConfig's fields are `imdb train`'s options (and
`imdb reproduce`'s where marked), with their help texts, and the report's train commands
parse back to the config they were made from. Plus how every --help reads."""

from __future__ import annotations

import importlib
import shlex
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from imdb_cli import registry
from imdb_cli.cli import COMMANDS, app
from imdb_cli.commands import help_format
from imdb_cli.config import TrainConfig, flag_name, train_invocation
from imdb_cli.errors import ImdbError


def _options(command: str) -> dict[str, Any]:
    """Long flag -> the click option of `imdb COMMAND`."""
    group = typer.main.get_command(app)
    found = group.get_command(group.make_context("imdb", [command, "--help"]), command)  # type: ignore[attr-defined]
    return {opt: param for param in found.params for opt in param.opts if opt.startswith("--")}


def test_every_training_setting_is_an_option_of_train_with_its_help() -> None:
    options = _options("train")
    for f in fields(TrainConfig):
        option = options[flag_name(f.name)]
        assert option.help == f.metadata["help"], f.name
        assert option.default is None  # not given: the model's YAML decides
        if isinstance(f.default, bool):
            assert option.secondary_opts == [f"--no-{f.name.replace('_', '-')}"]


def test_reproduce_takes_the_marked_training_options_with_its_own_help() -> None:
    options = _options("reproduce")
    marked = {f.name: f.metadata["reproduce"] for f in fields(TrainConfig)}
    # reproduce's own --lr is a grid of rates to sweep per model, not the training option.
    assert "sweep" in options["--lr"].help
    for name, reproduce in marked.items():
        if name == "lr":
            continue
        if not reproduce:
            assert flag_name(name) not in options, name
            continue
        expected = (
            reproduce
            if isinstance(reproduce, str)
            else TrainConfig.__dataclass_fields__[name].metadata["help"]
        )
        assert options[flag_name(name)].help == expected, name
    taken = {name for name, reproduce in marked.items() if reproduce}
    assert taken == {
        "epochs",
        "batch_size",
        "max_length",
        "truncation",
        "group_by_length",
        "device",
    }


def test_the_train_command_of_a_config_parses_back_to_that_config(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = registry.load_spec("tiny-bert")
    config = spec.training.with_overrides(
        epochs=3,
        lr=1.25e-4,
        adam_betas=(0.8, 0.95),
        adam_eps=1e-6,
        optimizer="adamw",
        weight_decay=0.01,
        warmup_ratio=0.1,
        max_length=64,
        truncation="head+tail",
        tf32=False,
        compile=True,
        group_by_length=True,
        device="cpu",
        seed=7,
        limit_train=100,
        early_stopping_patience=2,
    )
    command = str(train_invocation(spec, config, workdir))
    assert command.startswith(f"imdb --workdir {workdir} train tiny-bert --epochs 3 ")
    assert "--no-tf32" in command and "--adam-betas 0.8 0.95" in command
    parsed: list[TrainConfig] = []

    def capture(workspace: object, spec: object, config: TrainConfig, **_: object) -> None:
        parsed.append(config)
        raise ImdbError("parsed")

    monkeypatch.setattr("imdb_cli.commands.train.train_model", capture)
    result = CliRunner().invoke(app, shlex.split(command)[1:])
    assert "error: parsed" in result.output, result.output
    assert parsed == [config]


def test_the_train_command_of_the_yamls_own_settings_has_no_options() -> None:
    spec = registry.load_spec("tiny-bert")
    assert str(train_invocation(spec, spec.training)) == "imdb train tiny-bert"


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_shows_no_bool_placeholder_after_flags(command: str) -> None:
    result = CliRunner().invoke(app, [*command.split(), "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output


def test_a_default_follows_its_wrapped_help_text_where_it_fits() -> None:
    result = CliRunner().invoke(app, ["reproduce", "--help"], env={"COLUMNS": "80"})
    lines = [line.strip("│ ") for line in result.output.splitlines()]
    assert "drawn. [default: 1]" in lines, result.output  # not "drawn." then "[default: 1]"


@pytest.mark.parametrize("command", ["train", "sweep", "reproduce"])
def test_a_negated_flag_sits_under_its_flag_leaving_the_help_text_room_at_80_columns(
    command: str,
) -> None:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = [line.strip("│ ") for line in result.output.splitlines()]
    at = next(i for i, line in enumerate(lines) if line.startswith("--group-by-length "))
    assert lines[at + 1].startswith("--no-group-by-length ")
    # A column of --no-... forms left the help text 19 characters; now it gets 30 or more.
    assert " Batch reviews of similar" in lines[at], result.output
    assert "[default: True]" not in result.output and "[default: False]" not in result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80


@pytest.mark.parametrize("typer_has", ["no such function", "another signature"])
def test_help_works_on_a_typer_without_the_function_help_format_wraps(
    typer_has: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    current = typer.rich_utils._get_parameter_help  # type: ignore[attr-defined]
    shipped = getattr(current, "__wrapped__", current)  # typer's own, unwrapped
    assert getattr(current, "imdb_joined", False)  # this typer is wrapped...

    def another(parameter: Any, context: Any) -> Any:
        raise AssertionError("a function of another signature is left alone")

    with monkeypatch.context() as patch:
        if typer_has == "no such function":
            patch.delattr(typer.rich_utils, "_get_parameter_help")
        else:
            patch.setattr(typer.rich_utils, "_get_parameter_help", another)
        importlib.reload(help_format)  # what importing imdb_cli.cli does on such a typer
        # ...and such a typer is not.
        assert getattr(typer.rich_utils, "_get_parameter_help", None) in (None, another)
        # That typer lays out help its own way (here: the way this typer does, unwrapped).
        patch.setattr(typer.rich_utils, "_get_parameter_help", shipped, raising=False)
        result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "80"})
        unjoined = CliRunner().invoke(app, ["reproduce", "--help"], env={"COLUMNS": "80"})
    importlib.reload(help_format)
    assert result.exit_code == 0, result.output
    assert "--epochs" in result.output and "Usage: imdb train" in result.output
    lines = [line.strip("│ ") for line in unjoined.output.splitlines()]
    assert "drawn. [default: 1]" not in lines and "[default: 1]" in lines  # typer's layout
