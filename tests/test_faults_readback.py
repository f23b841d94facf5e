"""Fault injection, what is read back: a damaged ledger, checkpoint or analysis file is one
red line naming it (never "runs: none", never an IndexError deep down), and the other
results still read."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from analysis_support import imdb
from cli_support import assert_one_red_line
from fault_support import flip_byte
from handmade_ledgers import write_run

from imdb_cli.analysis.embeddings import BOUNDARY_CSV
from imdb_cli.runs import checkpoints
from imdb_cli.runs.ledger import read_ledger
from imdb_cli.runs.run import latest_run
from imdb_cli.workspace import Workspace

pytestmark = pytest.mark.usefixtures("single_thread")  # conftest.py

Damage = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Damage:
    def damage(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = document
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[int(last) if last.isdigit() else last] = value

    return damage


DAMAGED_LEDGERS: dict[str, tuple[Damage, str]] = {
    "data a list": (_set("data", []), "'data'"),
    "environment a string": (_set("environment", "cpu"), "'environment'"),
    "status unknown": (_set("status", "exploded"), "unknown status 'exploded'"),
    "test.probs text": (_set("test.probs", ["0.9", "0.1"]), "'test.probs[0]'"),
    "test.probs too few": (_set("test.probs", [0.9]), "should be as many"),
    "test.probs above one": (_set("test.probs.0", 7.5), "outside [0, 1]"),
    "test.acc text": (_set("test.acc", "high"), "'test.acc'"),
    "test.labels unknown class": (_set("test.labels.0", 9), "'test.labels'"),
    "epochs a dict": (_set("epochs", {"1": {}}), "'epochs'"),
    "epoch val_acc null": (_set("epochs.0.val_acc", None), "'epochs[0].val_acc'"),
    "epoch field missing": (lambda d: d["epochs"][0].pop("lr"), "'epochs[0].lr' is missing"),
    "best_epoch not an epoch": (_set("best_epoch", 7), "'best_epoch' 7"),
    "data.split_seed text": (_set("data.split_seed", "42"), "'data.split_seed'"),
    "unknown field": (_set("surprise", 1), "unknown field 'surprise'"),
    "unknown data field": (
        _set("data.test_ids_sha256", "x"),
        "unknown field 'data.test_ids_sha256'",
    ),
    "config lr text": (_set("config.lr", "fast"), "'config.lr'"),
    "config lr negative": (_set("config.lr", -1.0), "'config.lr' must be positive"),
    "environment load text": (_set("environment.load_average_start", "high"), "'environment"),
    "tokenization missing": (lambda d: d["data"].pop("tokenization"), "'data.tokenization'"),
    # Ledgers that contradict themselves (runs/ledger_checks.py).
    "test.acc not its predictions": (
        _set("test.acc", 0.5),
        "'test.acc' 0.5 is not what its per-review labels and probabilities give (3/4",
    ),
    "test.loss not its probabilities": (_set("test.loss", 0.01), "'test.loss' 0.01 is not what"),
    "test.probs row not summing to 1": (
        _set("test.probs", [[0.2, 0.9], [0.1, 0.9], [0.8, 0.2], [0.1, 0.9]]),
        "'test.probs' row 0 sums to 1.1",
    ),
    "test.probs row of another width": (
        _set("test.probs", [[0.2, 0.7, 0.1]] * 4),
        "one probability per class (2)",
    ),
    "test.acc above one": (_set("test.acc", 1.5), "'test.acc' 1.5 is not an accuracy"),
    "test.loss negative": (_set("test.loss", -0.2), "'test.loss' -0.2 is not a loss"),
    "test.epoch not an epoch": (_set("test.epoch", 4), "'test.epoch' 4 is not one of its epochs"),
    "epoch train_acc above one": (_set("epochs.0.train_acc", 1.2), "'epochs[0].train_acc' 1.2"),
    "epoch val_loss negative": (_set("epochs.0.val_loss", -1.0), "'epochs[0].val_loss' -1.0"),
    "epoch train_loss NaN": (_set("epochs.0.train_loss", float("nan")), "'epochs[0].train_loss'"),
    "epoch lr infinite": (_set("epochs.0.lr", float("inf")), "'epochs[0].lr' inf"),
    "epochs out of order": (_set("epochs.0.epoch", 3), "'epochs[0].epoch' is 3"),
    "best_val_acc not its epoch's": (
        _set("best_val_acc", 0.95),
        "'best_val_acc' 0.95 is not epoch 1's validation accuracy (0.9)",
    ),
    "best_val_acc below another epoch's": (
        lambda d: d["epochs"].append({**d["epochs"][0], "epoch": 2, "val_acc": 0.97}),
        "'best_val_acc' 0.9 is below the highest validation accuracy of its epochs (0.97)",
    ),
    "schema_version text": (_set("schema_version", "2"), "'schema_version' should be an integer"),
    "schema_version true": (_set("schema_version", True), "'schema_version' should be an integer"),
}


@pytest.fixture
def two_models(tmp_path: Path) -> Workspace:
    space = Workspace(tmp_path / "ws")
    labels, right = [0, 1, 0, 1], [True, True, False, True]
    write_run(space, "tiny-bert", "good", labels=labels, right=right)
    write_run(space, "minilm", "damaged", labels=labels, right=right)
    return space


@pytest.mark.parametrize("name", list(DAMAGED_LEDGERS))
def test_a_damaged_ledger_is_named_by_path_and_field(two_models: Workspace, name: str) -> None:
    damage, says = DAMAGED_LEDGERS[name]
    path = two_models.model_runs("minilm") / "damaged" / "ledger.json"
    document = json.loads(path.read_text())
    damage(document)
    path.write_text(json.dumps(document))
    for args in (["compare", "minilm"], ["compare"], ["evaluate", "minilm"]):
        result = imdb(two_models, *args)
        assert_one_red_line(result, str(path), "damaged ledger", says)
    # The other model's run still reads.
    result = imdb(two_models, "compare", "tiny-bert")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("keep", [0, 10, 0.5])
def test_a_truncated_ledger_is_named_not_skipped(two_models: Workspace, keep: float) -> None:
    path = two_models.model_runs("minilm") / "damaged" / "ledger.json"
    text = path.read_text()
    path.write_text(text[: int(keep * len(text)) if isinstance(keep, float) else keep])
    result = imdb(two_models, "compare", "minilm")
    assert_one_red_line(result, str(path))
    assert "runs: none" not in result.output


def _run(space: Workspace) -> Path:
    run = latest_run(space, "tiny-bert")
    assert run is not None
    return run.path


def _record_checksums(run_dir: Path) -> None:
    """As train records them (ledgers of runs trained before checksums have none)."""
    path = run_dir / "ledger.json"
    document = json.loads(path.read_text())
    for epoch in document["epochs"]:
        epoch["weights_sha256"] = checkpoints.file_sha256(run_dir / epoch["checkpoint"])
    path.write_text(json.dumps(document))


def test_a_checkpoint_damaged_at_the_same_size_is_caught_by_its_checksum(
    trained_workspace: Workspace,
) -> None:
    run_dir = _run(trained_workspace)
    _record_checksums(run_dir)
    weights = run_dir / read_ledger(run_dir).epochs[0].checkpoint
    assert imdb(trained_workspace, "evaluate", str(run_dir)).exit_code == 0
    size = weights.stat().st_size
    flip_byte(weights)
    assert weights.stat().st_size == size
    for args in (
        ["evaluate", str(run_dir)],
        ["attention", "--review", "Fine.", "--models", str(run_dir)],
    ):
        result = imdb(trained_workspace, *args)
        assert_one_red_line(result, str(weights), "damaged", "sha256")


def test_a_ledger_without_checksums_still_loads(trained_workspace: Workspace) -> None:
    run_dir = _run(trained_workspace)
    document = json.loads((run_dir / "ledger.json").read_text())
    for epoch in document["epochs"]:
        epoch.pop("weights_sha256", None)
    (run_dir / "ledger.json").write_text(json.dumps(document))
    result = imdb(trained_workspace, "evaluate", str(run_dir))
    assert result.exit_code == 0, result.output


def test_a_truncated_checkpoint_is_named(trained_workspace: Workspace) -> None:
    run_dir = _run(trained_workspace)
    weights = run_dir / read_ledger(run_dir).epochs[0].checkpoint
    weights.write_bytes(weights.read_bytes()[:1000])
    result = imdb(trained_workspace, "evaluate", str(run_dir))
    assert_one_red_line(result, str(weights))


@pytest.mark.parametrize("cut", ["mid-row", "mid-quote", "header-only", "empty"])
def test_a_truncated_boundary_samples_csv_is_one_red_line(tmp_path: Path, cut: str) -> None:
    space = Workspace(tmp_path / "ws")
    path = space.analysis / "tsne" / "latest" / BOUNDARY_CSV
    path.parent.mkdir(parents=True)
    header = "review_id,label,text,margin,disagree,spread"
    first, second = "7,1,A fine film.,0.1,True,0.3", '8,0,"Dull, and long.",0.2,False,0.1'
    path.write_text(f"{header}\n{first}\n{second}\n")
    intact = imdb(space, "attention", "--from-errors", "2", "--models", "tiny-bert")
    assert "2 review(s) from" in intact.output  # read, then stopped: tiny-bert has no run here
    chopped = {
        "mid-row": f"{header}\n{first}\n8,0\n",
        "mid-quote": f'{header}\n{first}\n8,0,"Dull, and',
        "header-only": header[: len(header) // 2],
        "empty": "",
    }[cut]
    path.write_text(chopped)
    result = imdb(space, "attention", "--from-errors", "2", "--models", "tiny-bert")
    assert_one_red_line(result, str(path))
