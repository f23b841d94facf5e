"""Ledger schema versions: a version-1 ledger (written before data sets, class-probability
rows, checksums and W&B resume) and a version-2 ledger (the data's tokenization flat) read
and work as before, every ledger is written in the newest version, and a version this imdb
does not know is one red line."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from analysis_support import MODELS, imdb
from cli_support import assert_one_red_line
from handmade_ledgers import write_run

from imdb_cli.runs.ledger import LEDGER_NAME, SCHEMA_VERSION, read_ledger, write_ledger
from imdb_cli.runs.run import latest_run
from imdb_cli.workspace import Workspace

# What version 2 added, by section; a version-1 ledger has none of it.
ADDED_IN_2: dict[str, tuple[str, ...]] = {
    "": ("wandb_run_id", "wandb_last_step"),
    "data": ("dataset", "labels", "num_classes", "limit", "keep_duplicates", "source"),
    "environment": ("cpu_count", "load_average_start", "load_average_end"),
}


def as_version_2(document: dict[str, Any]) -> dict[str, Any]:
    """A ledger in the shape version 2 had: the data's max length and truncation beside its
    other fields, not under `tokenization`, and no tokenizer checksums."""
    old = copy.deepcopy(document)
    old["schema_version"] = 2
    old["data"] |= old["data"].pop("tokenization")
    old["data"].pop("tokenizer_files_sha256", None)
    return old


def as_version_1(document: dict[str, Any]) -> dict[str, Any]:
    """A ledger in the shape version 1 had: version 2's, less ADDED_IN_2 and the weights
    checksums, and P(class 1) per test review instead of a row of class probabilities."""
    old = as_version_2(document)
    old["schema_version"] = 1
    for section, keys in ADDED_IN_2.items():
        for key in keys:
            (old[section] if section else old).pop(key, None)
    for epoch in old["epochs"]:
        del epoch["weights_sha256"]
    old["test"]["probs"] = [
        row[1] if isinstance(row, list) else row for row in old["test"]["probs"]
    ]
    return old


def rewrite(run_dir: Path, document: dict[str, Any]) -> None:
    (run_dir / LEDGER_NAME).write_text(json.dumps(document, indent=2), encoding="utf-8")


def load(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / LEDGER_NAME).read_text(encoding="utf-8"))


def test_a_version_1_ledger_is_evaluated_and_compared_as_before(
    trained_workspace: Workspace,
) -> None:
    before = imdb(trained_workspace, "compare", *MODELS, "--format", "json")
    assert before.exit_code == 0, before.output
    runs = {model: latest_run(trained_workspace, model) for model in MODELS}
    for run in runs.values():
        assert run is not None
        written = load(run.path)
        assert written["schema_version"] == SCHEMA_VERSION == 3
        old = as_version_1(written)
        assert "dataset" not in old["data"] and isinstance(old["test"]["probs"][0], float)
        rewrite(run.path, old)

    run = runs["tiny-bert"]
    assert run is not None
    ledger = read_ledger(run.path)
    assert ledger.schema_version == 1
    assert ledger.dataset == "imdb" and ledger.label_names == ["negative", "positive"]
    assert ledger.wandb_run_id is None and ledger.epochs[0].weights_sha256 is None
    evaluated = imdb(trained_workspace, "evaluate", str(run.path), "--device", "cpu")
    assert evaluated.exit_code == 0, evaluated.output
    assert f"test acc {ledger.test.acc:.4f}" in evaluated.stdout  # type: ignore[union-attr]

    after = imdb(trained_workspace, "compare", *MODELS, "--format", "json")
    assert after.exit_code == 0, after.output
    was, now = json.loads(before.stdout), json.loads(after.stdout)
    # The same results, confusion matrices, calibration (up to float32 rounding: version 1
    # kept P(class 1), and 1 - P(class 1) is not quite the stored P(class 0)) and paired
    # tests. What version 1 did not record, like the machine's load, is now unknown.
    for key in ("label", "test_acc", "test_loss"):
        assert [m[key] for m in now["models"]] == [m[key] for m in was["models"]], key
    for old_row, new_row in zip(was["models"], now["models"], strict=True):
        assert new_row["errors"]["confusion"] == old_row["errors"]["confusion"]
        ece = old_row["errors"]["calibration"]["ece"]
        assert new_row["errors"]["calibration"]["ece"] == pytest.approx(ece, abs=1e-6)
    assert now["pairs"] == was["pairs"]


@pytest.mark.parametrize("older", [as_version_1, as_version_2])
def test_an_older_ledger_reads_as_it_was_and_is_written_in_the_newest(
    tmp_path: Path, older: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    run_dir = write_run(Workspace(tmp_path), "bert", "r1", labels=[0, 1], right=[True, False])
    newest = read_ledger(run_dir)
    rewrite(run_dir, older(load(run_dir)))
    ledger = read_ledger(run_dir)
    assert ledger.tokenization == newest.tokenization
    assert ledger.config == newest.config and ledger.environment == newest.environment
    write_ledger(run_dir, ledger)  # as resuming the run does
    assert load(run_dir)["schema_version"] == SCHEMA_VERSION
    assert read_ledger(run_dir).data == newest.data


@pytest.mark.parametrize(
    ("version", "says"),
    [(99, "ledger schema 99 is newer than this imdb"), (0, "ledger schema 0 is not one")],
)
@pytest.mark.parametrize("command", ["evaluate", "compare"])
def test_a_ledger_of_an_unknown_version_is_one_red_line_naming_it(
    tmp_path: Path, command: str, version: int, says: str
) -> None:
    workspace = Workspace(tmp_path)
    run_dir = write_run(workspace, "tiny-bert", "r1", labels=[0, 1], right=[True, False])
    rewrite(run_dir, load(run_dir) | {"schema_version": version})
    result = imdb(workspace, command, str(run_dir))
    assert_one_red_line(result, str(run_dir / LEDGER_NAME), says)
