"""`imdb reproduce`: the whole study in one command, and a report.md that matches the ledgers."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import Result

from imdb_cli.errors import ImdbError
from imdb_cli.runs.ledger import read_ledger
from imdb_cli.runs.run import Run, list_runs
from imdb_cli.study import reproduce
from imdb_cli.workspace import Workspace


def section(text: str, title: str) -> str:
    """The body of a `## title` section of a markdown document."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"no section {title!r}"
    return match.group(1)


def table_rows(markdown: str) -> dict[str, list[str]]:
    """The first markdown table: first cell -> cells."""
    rows = {}
    for line in markdown.splitlines():
        if line.startswith("| ---"):
            continue
        if line.startswith("| "):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows.setdefault(cells[0], cells)
        elif rows:
            break
    return rows


def assert_table_is_the_ledgers(text: str, runs: dict[str, list[Run]]) -> None:
    rows = table_rows(section(text, "Results"))
    assert rows["model"][:4] == ["model", "best val acc @ epoch", "test loss", "test acc"]
    for key, found in runs.items():
        shown = read_ledger(found[-1].path)  # the latest run is the one shown
        assert shown.test is not None and shown.best_val_acc is not None
        cells = rows[key]
        assert cells[1] == f"{shown.best_val_acc:.4f} @ {shown.best_epoch}"
        assert cells[2] == f"{shown.test.loss:.4f}"
        assert cells[3].strip("*") == f"{shown.test.acc:.4f}"


def _tiny_study(run_cli: Callable[..., Result], data_dir: Path, *extra: str) -> Result:
    """`imdb reproduce` of tiny-bert vs tiny-modernbert, 1 epoch, no analysis."""
    models = ("--models", "tiny-bert,tiny-modernbert", "--data-dir", str(data_dir))
    return run_cli("reproduce", *models, "--epochs", "1", *extra, "--no-analysis")


def test_reproduce_trains_compares_and_reports_what_the_ledgers_say(
    run_cli: Callable[..., Result], workdir: Path, synthetic_imdb_dir: Path
) -> None:
    result = _tiny_study(run_cli, synthetic_imdb_dir)
    assert result.exit_code == 0, result.output
    workspace = Workspace(workdir)
    runs = {key: list_runs(workspace, key) for key in ("tiny-bert", "tiny-modernbert")}
    assert [len(found) for found in runs.values()] == [1, 1]
    assert all(found[0].ledger.status == "completed" for found in runs.values())
    text = (workdir / "report.md").read_text()
    assert_table_is_the_ledgers(text, runs)
    for found in runs.values():
        assert f"{found[0].ledger.test.acc:.4f}" in result.stdout  # type: ignore[union-attr]
    assert "McNemar" in text and "Wilson score interval" in text
    assert "## Error analysis" not in text
    steps = section(text, "Each step as its own command")
    for command in ("prepare", "train tiny-bert --epochs 1", "train tiny-modernbert", "compare"):
        assert f"imdb --workdir {workdir} {command}" in steps
    assert "| torch |" in section(text, "Versions")
    assert f"reproduce --models tiny-bert,tiny-modernbert --data-dir {synthetic_imdb_dir}" in text
    # report.html beside report.md: the same table, and no analysis to show.
    page = (workdir / "report.html").read_text(encoding="utf-8")
    assert "[report.html](report.html)" in text and f"page:   {workdir / 'report.html'}" in (
        result.stdout
    )
    for found in runs.values():
        ledger = found[0].ledger
        assert ledger.test is not None
        assert f'data-key="test_acc" data-value="{ledger.test.acc!r}"' in page
    assert "No t-SNE on this page: not run (--no-analysis)." in page


def test_the_seeds_hint_followed_as_written_adds_only_the_missing_seeds(
    run_cli: Callable[..., Result], workdir: Path, synthetic_imdb_dir: Path
) -> None:
    assert _tiny_study(run_cli, synthetic_imdb_dir).exit_code == 0
    compared = run_cli("compare", "tiny-bert", "tiny-modernbert", "-f", "json")
    hint = json.loads(compared.stdout)["verdict"]["seeds_hint"]
    command = re.search(r"imdb (reproduce [^()]*?--seeds [\d,]+)", hint)
    assert command, hint
    words = shlex.split(command.group(1))
    # The study's own data and settings ride along, so the new seeds are like the old one.
    assert words[words.index("--epochs") + 1] == "1" and "--data-dir" in words
    result = run_cli(*words, "--no-analysis")
    assert result.exit_code == 0, result.output
    for model in ("tiny-bert", "tiny-modernbert"):
        assert f"{model} (seed 42): done before with these settings" in result.output
        runs = list_runs(Workspace(workdir), model)
        assert sorted(r.ledger.config.seed for r in runs) == [42, 43, 44]  # 42 not trained again
        assert all(r.ledger.config.epochs == 1 for r in runs)
    text = (workdir / "report.md").read_text()
    assert "3 and 3 seeds" in text


@pytest.mark.slow
def test_reproduce_with_seeds_and_analysis_on_real_imdb(
    run_cli: Callable[..., Result], workdir: Path, real_imdb_dir: Path
) -> None:
    result = run_cli(
        "reproduce",
        "--models",
        "tiny-bert,tiny-modernbert",
        "--data-dir",
        str(real_imdb_dir),
        "--limit",
        "400",
        "--epochs",
        "1",
        "--seeds",
        "42,43",
        "--tsne-samples",
        "40",
    )
    assert result.exit_code == 0, result.output
    workspace = Workspace(workdir)
    runs = {key: list_runs(workspace, key) for key in ("tiny-bert", "tiny-modernbert")}
    assert [len(found) for found in runs.values()] == [2, 2]
    text = (workdir / "report.md").read_text()
    assert_table_is_the_ledgers(text, runs)
    rows = table_rows(section(text, "Results"))
    for key, found in runs.items():
        assert found[-1].ledger.test is not None and found[-1].ledger.test.samples == 40
        accs = [run.ledger.test.acc for run in found]  # type: ignore[union-attr]
        mean = sum(accs) / 2
        std = (sum((a - mean) ** 2 for a in accs)) ** 0.5  # ddof=1 with two runs
        assert rows[key][5] == f"{mean:.4f} ± {std:.4f} (n=2)"

    # Every picture the report shows exists, linked relative to report.md.
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", section(text, "Error analysis"))
    assert images and all(not Path(i).is_absolute() and (workdir / i).is_file() for i in images)
    assert any("tsne" in i for i in images) and any("attention" in i for i in images)
    steps = section(text, "Each step as its own command")
    assert "--limit 400" in steps and "train tiny-bert --epochs 1 --seed 43" in steps
    assert "tsne tiny-bert/" in steps and "attention --from-errors 1" in steps


def test_bad_flags_are_refused_before_any_work(
    run_cli: Callable[..., Result], workdir: Path
) -> None:
    for args, says in [
        (["--seeds", "42,x"], "--seeds '42,x'"),
        (["--seeds", "42,42"], "--seeds: a seed is repeated"),
        (["--models", "tiny-bert,gpt5"], "unknown model 'gpt5'"),
        (["--epochs", "0"], "--epochs must be at least 1"),
        (["--tsne-samples", "2"], "--tsne-samples must be at least 5"),
    ]:
        result = run_cli("reproduce", "--models", "tiny-bert", *args)
        assert result.exit_code != 0 and "Traceback" not in result.output
        assert says in result.stderr, (args, result.stderr)
    assert not (workdir / "runs").exists() and not (workdir / "report.md").exists()


def test_seeds_give_one_training_per_model_and_seed() -> None:
    options = reproduce.StudyOptions(
        models=("tiny-bert", "tiny-modernbert"), seeds=(42, 43), overrides={"epochs": 1}
    )
    plan = reproduce.make_plan(options)
    assert plan.trainings() == 4
    assert [c.seed for c in plan.configs["tiny-bert"]] == [42, 43]
    assert {c.epochs for cs in plan.configs.values() for c in cs} == {1}


def test_failed_trainings_are_reported_and_the_command_fails(
    run_cli: Callable[..., Result],
    workdir: Path,
    synthetic_imdb_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from imdb_cli.training import loop

    def diverge(*_: object, **__: object) -> None:
        raise ImdbError("loss is nan at step 3")

    monkeypatch.setattr(loop, "train", diverge)
    result = run_cli("reproduce", "--models", "tiny-bert", "--data-dir", str(synthetic_imdb_dir))
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "the study is incomplete (training tiny-bert (seed 42) failed: loss is nan" in (
        result.stderr
    )
    text = (workdir / "report.md").read_text()
    assert "**Incomplete.**" in text and "No run completed" in text
    assert "Skipped: no completed run to embed." in text


def test_truncation_and_length_groups_reach_prepare_and_every_training(
    run_cli: Callable[..., Result], workdir: Path, synthetic_imdb_dir: Path
) -> None:
    result = _tiny_study(
        run_cli,
        synthetic_imdb_dir,
        "--max-length",
        "64",
        "--truncation",
        "head+tail",
        "--group-by-length",
    )
    assert result.exit_code == 0, result.output
    workspace = Workspace(workdir)
    for key in ("tiny-bert", "tiny-modernbert"):
        (run,) = list_runs(workspace, key)
        assert run.ledger.config.truncation == "head+tail"
        assert run.ledger.config.group_by_length is True
        assert (
            run.ledger.data.tokenization.truncation == "head+tail"
            and run.ledger.data.tokenization.max_length == 64
        )
    steps = section((workdir / "report.md").read_text(), "Each step as its own command")
    assert "--max-length 64 --seed 42 --truncation head+tail" in steps
    trained = "train tiny-bert --epochs 1 --max-length 64 --truncation head+tail --group-by-length"
    assert trained in steps
    text = (workdir / "report.md").read_text()
    assert "--truncation head+tail --group-by-length" in text.split("Each step")[0]
