"""A three-class data set of the tests' own (local CSV files, the README's my_reviews.yaml)
through every command: prepare, train, evaluate, compare, tsne, predict and attention name
its three labels, and compare never pairs its runs with IMDB's."""

from __future__ import annotations

import csv
import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from analysis_support import imdb
from data_support import THREE_LABELS, write_my_reviews

from imdb_cli.runs import checkpoints
from imdb_cli.runs.ledger import read_ledger
from imdb_cli.runs.run import Run, latest_run
from imdb_cli.workspace import Workspace

TINY = "tiny-bert"
SHAPE = ("--max-length", "32")


@pytest.fixture
def three_class_run(trained_workspace: Workspace, tmp_path: Path) -> tuple[Workspace, Path, Run]:
    """The trained IMDB workspace plus a tiny-bert run on my-reviews (150 reviews)."""
    yaml_path = write_my_reviews(tmp_path / "data", n=150)
    ws = trained_workspace
    prepared = imdb(ws, "prepare", "--models", TINY, "--dataset", str(yaml_path), *SHAPE)
    assert prepared.exit_code == 0, prepared.output
    trained = imdb(
        ws,
        "train",
        TINY,
        "--dataset",
        str(yaml_path),
        *SHAPE,
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--device",
        "cpu",
        "--run-name",
        "three",
    )
    assert trained.exit_code == 0, trained.output
    run = latest_run(ws, TINY, dataset="my-reviews")
    assert run is not None and run.run_id == "three"
    return ws, yaml_path, run


def test_three_classes_through_every_command(three_class_run) -> None:
    ws, yaml_path, run = three_class_run
    dataset = ("--dataset", str(yaml_path))

    # train: the run records its data set; the head has three outputs; the ledger keeps
    # one row of three class probabilities per test review.
    ledger = read_ledger(run.path)
    assert ledger.dataset == "my-reviews" and ledger.label_names == list(THREE_LABELS)
    assert ledger.data.num_classes == 3
    weights = checkpoints.read_weights(run.path / ledger.epochs[-1].checkpoint)
    assert weights["head.weight"].shape[0] == 3 and weights["head.bias"].shape == (3,)
    assert ledger.test is not None and ledger.test.samples == 15
    probs = ledger.test.prob_matrix()
    assert probs.shape == (15, 3) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    correct = (ledger.test.predicted() == np.asarray(ledger.test.labels)).sum()
    assert correct == round(ledger.test.acc * 15)

    # evaluate: a model key means its latest run on the data set asked for.
    evaluated = imdb(ws, "evaluate", TINY, *dataset, "--quiet")
    assert evaluated.exit_code == 0, evaluated.output
    assert (
        "tiny-bert/three" in evaluated.output
        and f"test acc {ledger.test.acc:.4f}" in evaluated.output
    )

    # compare: the table is titled by the data set; the confusion matrix names the classes.
    compared = imdb(ws, "compare", TINY, *dataset, "--format", "markdown")
    assert compared.exit_code == 0, compared.output
    assert "tiny-bert" in compared.output
    for name in THREE_LABELS:
        assert name in compared.output, name

    # tsne: three classes in the tables and the files.
    mapped = imdb(ws, "tsne", TINY, *dataset, "--n-samples", "15", "--perplexity", "4")
    assert mapped.exit_code == 0, mapped.output
    out_dir = ws.analysis / "tsne" / "latest"
    with (out_dir / "boundary_samples.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 15
    for name in THREE_LABELS:
        assert f"prob_{name}_tiny-bert" in rows[0]
    assert {row["label_name"] for row in rows} <= set(THREE_LABELS)
    assert {row["predicted_tiny-bert"] for row in rows} <= set(THREE_LABELS)
    margins = [float(row["margin"]) for row in rows]
    assert margins == sorted(margins)
    summary = json.loads((out_dir / "boundary_samples.json").read_text())
    assert summary["classes"] == list(THREE_LABELS)
    assert any(name in mapped.output for name in THREE_LABELS), mapped.output

    # predict: each review's label and the probability of each of the three classes.
    scored = imdb(
        ws, "predict", TINY, *dataset, "--text", "Fine, nothing more.", "--format", "jsonl"
    )
    assert scored.exit_code == 0, scored.output
    row = json.loads(next(line for line in scored.output.splitlines() if line.startswith("{")))
    assert row["label"] in THREE_LABELS
    assert sum(row[f"prob_{name}"] for name in THREE_LABELS) == pytest.approx(1.0, abs=1e-4)

    # attention: the t-SNE's hint names the data set, so that the model key means the run
    # the sample came from; without it the IMDB run is refused (its classes are others).
    hint = re.search(r"^next: imdb (attention .*)$", mapped.output, re.M)
    assert hint is not None and hint.group(1).endswith("--dataset my-reviews"), mapped.output
    refused = imdb(ws, "attention", "--from-errors", "2", "--models", TINY)
    assert refused.exit_code != 0 and "Traceback" not in refused.output
    assert "was trained on imdb; add --dataset my-reviews" in " ".join(refused.output.split())
    # The prediction and the true label are class names.
    explained = imdb(ws, *shlex.split(hint.group(1)))
    assert explained.exit_code == 0, explained.output
    assert any(name in explained.output for name in THREE_LABELS)
    saved = sorted((ws.analysis / "attention" / "latest").rglob("*.json"))
    assert saved
    prediction = json.loads(saved[0].read_text())["prediction"]
    assert list(prediction["probs"]) == list(THREE_LABELS) and prediction["label"] in THREE_LABELS


def test_compare_never_pairs_runs_on_different_data_sets(three_class_run) -> None:
    ws, _, run = three_class_run
    imdb_run = latest_run(ws, TINY, dataset="imdb")
    assert imdb_run is not None
    result = imdb(ws, "compare", str(run.path), str(imdb_run.path), "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{") :])
    assert not report["pairs"]
    (unpaired,) = report["unpaired"]
    assert "different data sets (my-reviews vs imdb)" in unpaired["message"]


def test_model_keys_mean_runs_on_the_data_set_asked_for(three_class_run) -> None:
    ws, yaml_path, _ = three_class_run
    # Without --dataset a model key means IMDB's run, with it the data set's.
    default = imdb(ws, "evaluate", TINY, "--quiet")
    assert default.exit_code == 0 and "tiny-bert/three" not in default.output
    other = imdb(ws, "evaluate", "tiny-modernbert", "--dataset", str(yaml_path))
    assert other.exit_code != 0 and "no completed run on my-reviews" in other.output


def test_the_hint_to_add_a_data_set_works_when_followed_as_written(
    three_class_run, tmp_path: Path
) -> None:
    """A data set read from a YAML given by path is named in hints by the name its runs
    recorded, and that name works with --dataset: the workspace finds the YAML again."""
    ws, _, run = three_class_run
    for other in ws.model_runs(TINY).iterdir():  # tiny-bert keeps its my-reviews run only
        if other.name != run.run_id:
            other.rename(tmp_path / other.name)
    asked = imdb(ws, "evaluate", TINY, "--quiet")
    assert asked.exit_code != 0
    hint = re.search(r"\(add (--dataset \S+)\)", asked.output)
    assert hint is not None and hint.group(1) == "--dataset my-reviews", asked.output
    for command in (["evaluate", TINY], ["compare", TINY], ["predict", TINY, "--text", "Fine."]):
        followed = imdb(ws, *command, *hint.group(1).split())
        assert followed.exit_code == 0, (command, followed.output)
    # A command that reads the data set finds its YAML by the same name.
    prepared = imdb(ws, "prepare", "--models", TINY, *hint.group(1).split(), *SHAPE)
    assert prepared.exit_code == 0 and "reused" in prepared.output, prepared.output
