"""`imdb tsne`: embeddings, t-SNE maps and the review lists, on two trained tiny runs."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from analysis_support import MODELS, copy_trained, imdb
from PIL import Image
from training_support import one_thread

from imdb_cli.analysis import embeddings, folders
from imdb_cli.analysis.embeddings import TsneOptions, TsneResult, compute_tsne
from imdb_cli.data.tokenized import TokenizedCache, load_split
from imdb_cli.errors import ImdbError
from imdb_cli.model import masked_mean
from imdb_cli.runs import checkpoints, ledger
from imdb_cli.runs.caches import cache_of_run
from imdb_cli.runs.run import Run
from imdb_cli.runs.select import resolve_run
from imdb_cli.training.inference import evaluate
from imdb_cli.workspace import Workspace

pytestmark = pytest.mark.usefixtures("single_thread")  # conftest.py

SMALL = TsneOptions(split="test", n_samples=40, perplexity=10.0, seed=7, device="cpu")


@pytest.fixture(scope="module")
def shared_workspace(trained_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """One copy for the tests that only read `both_models` (one t-SNE run for all of them)."""
    return copy_trained(trained_root, tmp_path_factory.mktemp("tsne") / "ws")


@pytest.fixture(scope="module")
def both_models(shared_workspace: Workspace) -> TsneResult:
    previous = one_thread()
    try:
        runs = [resolve_run(shared_workspace, model) for model in MODELS]
        return compute_tsne(shared_workspace, runs, SMALL)
    finally:
        torch.set_num_threads(previous)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def png_shape(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        return image.height, image.width


def test_tsne_of_two_models_writes_maps_tables_and_a_latest_pointer(trained_workspace: Workspace):
    result = imdb(trained_workspace, "tsne", *MODELS, "--n-samples", "40", "--perplexity", "10")
    assert result.exit_code == 0, result.output
    latest = trained_workspace.analysis / "tsne" / "latest"
    assert latest.is_dir()
    for name in ("boundary_samples.csv", "boundary_samples.json", "disagreements.csv"):
        assert (latest / name).is_file(), name
    # One map per model at 7 x 7.4 inches, the side-by-side at 14 x 7.4, all at 100 DPI.
    for model in MODELS:
        assert png_shape(latest / f"tsne_{model}.png") == (740, 700)
    assert png_shape(latest / "tsne_side_by_side.png") == (740, 1400)
    rows = read_csv(latest / "boundary_samples.csv")
    assert len(rows) == 40
    assert {f"prob_{c}_{m}" for m in MODELS for c in ("negative", "positive")} <= set(rows[0])
    assert {r["label_name"] for r in rows} <= {"negative", "positive"}
    assert "boundary samples" in result.output and "most confident errors" in result.output


def test_tsne_embeddings_are_the_classifiers_pooled_vectors(
    shared_workspace: Workspace, both_models: TsneResult
):
    for view in both_models.views:
        # Direct forward of the same reviews, padded to the full max length (the engine
        # trims padding per batch), pooled with the classifier's masked mean.
        cache = cache_of_run(shared_workspace, view.run.ledger)
        split = load_split(cache, "test")
        rows = embeddings.rows_of(split, both_models.sample.review_ids, "test")
        input_ids = torch.from_numpy(np.asarray(split.input_ids[rows], dtype=np.int64))
        mask = torch.from_numpy(split.attention_mask()[rows].astype(np.int64))
        model, _ = checkpoints.load_classifier(view.run)
        with torch.no_grad():
            output = model(input_ids, mask)
            hidden = model.encoder(**model.encoder_inputs(input_ids, mask)).last_hidden_state
        np.testing.assert_allclose(view.pooled, output.pooled.numpy(), atol=1e-5)
        np.testing.assert_allclose(view.pooled, masked_mean(hidden, mask).numpy(), atol=1e-5)
        probs = torch.softmax(output.logits, -1).numpy()
        np.testing.assert_allclose(view.probs, probs, atol=1e-5)


def test_tsne_probabilities_are_what_evaluate_reports(
    shared_workspace: Workspace, both_models: TsneResult
):
    csv_path = both_models.out_dir / "boundary_samples.csv"
    rows = {int(r["review_id"]): r for r in read_csv(csv_path)}
    for view in both_models.views:
        evaluated = evaluate(
            shared_workspace, view.run, checkpoint="best", split="test", device="cpu"
        )
        by_id = dict(zip(evaluated.review_ids.tolist(), evaluated.probs.tolist(), strict=True))
        for review_id, row in rows.items():
            for class_id, name in enumerate(("negative", "positive")):
                assert float(row[f"prob_{name}_{view.name}"]) == pytest.approx(
                    by_id[review_id][class_id], abs=2e-6
                )
            predicted = int(np.argmax(by_id[review_id]))
            assert row[f"correct_{view.name}"] == str(predicted == int(row["label"]))


def test_same_seed_gives_the_same_sample_and_map_and_another_seed_does_not(
    trained_workspace: Workspace,
):
    run = resolve_run(trained_workspace, "tiny-bert")
    first = compute_tsne(trained_workspace, [run], SMALL)
    again = compute_tsne(trained_workspace, [run], SMALL)
    other = compute_tsne(trained_workspace, [run], TsneOptions(**{**SMALL.__dict__, "seed": 8}))
    np.testing.assert_array_equal(first.sample.review_ids, again.sample.review_ids)
    np.testing.assert_array_equal(first.views[0].xy, again.views[0].xy)
    assert not np.array_equal(first.sample.review_ids, other.sample.review_ids)
    assert first.out_dir != again.out_dir
    assert folders.latest_dir(trained_workspace, "tsne") is not None
    assert (trained_workspace.analysis / "tsne" / "latest").resolve() == other.out_dir.resolve()


def test_boundary_list_is_sorted_by_margin_and_disagreements_by_spread(
    both_models: TsneResult,
):
    result = both_models
    rows = read_csv(result.out_dir / "boundary_samples.csv")
    margins = [float(r["margin"]) for r in rows]
    assert margins == sorted(margins)
    for row in rows:  # the row's margin is the smallest of the models' 2|p - 0.5|
        per_model = [2 * abs(float(row[f"prob_positive_{m}"]) - 0.5) for m in MODELS]
        assert float(row["margin"]) == pytest.approx(min(per_model), abs=4e-6)
    disagreements = read_csv(result.out_dir / "disagreements.csv")
    assert len(disagreements) == sum(r["disagree"] == "True" for r in rows)
    for row in disagreements:
        assert row["predicted_tiny-bert"] != row["predicted_tiny-modernbert"]
    assert disagreements, "the fixture's two models should disagree on some reviews"
    spreads = [float(r["spread"]) for r in disagreements]
    assert spreads == sorted(spreads, reverse=True)
    for name, errors in result.confident_errors.items():
        assert all(not row.correct[name] for row in errors)
        assert [r.margins[name] for r in errors] == sorted(
            (r.margins[name] for r in errors), reverse=True
        )
    summary = json.loads((result.out_dir / "boundary_samples.json").read_text())
    assert summary["n_samples"] == 40 and set(summary["models"]) == set(MODELS)


def test_more_samples_than_the_split_uses_the_split_with_a_warning(trained_workspace: Workspace):
    result = imdb(
        trained_workspace, "tsne", "tiny-bert", "--n-samples", "5000", "--perplexity", "10"
    )
    assert result.exit_code == 0, result.output
    assert "5000 is more than the 60 test reviews" in result.output
    assert (
        len(read_csv(trained_workspace.analysis / "tsne" / "latest" / "boundary_samples.csv")) == 60
    )


def test_a_small_sample_gets_a_smaller_perplexity_unless_one_is_given(
    trained_workspace: Workspace,
):
    result = imdb(trained_workspace, "tsne", "tiny-bert", "--n-samples", "20")
    assert result.exit_code == 0, result.output
    summary = json.loads(
        (trained_workspace.analysis / "tsne" / "latest" / "boundary_samples.json").read_text()
    )
    assert summary["n_samples"] == 20
    assert summary["perplexity"] == pytest.approx(19 / 3)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tiny-bert", "--n-samples", "20", "--perplexity", "30"], "--perplexity 30 must be less"),
        (["tiny-bert", "--split", "train"], "--split must be val or test"),
        (["tiny-bert", "--n-samples", "2"], "--n-samples must be at least"),
        (["minilm"], "train minilm`"),
        (["no-such-model"], "neither a run folder nor a known model"),
        (["tiny-bert", "--device", "tpu"], "--device must be one of auto, cpu, cuda"),
        (["tiny-bert", "--perplexity", "0"], "--perplexity must be positive"),
    ],
)
def test_bad_tsne_input_is_one_red_line_without_traceback(
    trained_workspace: Workspace, args: list[str], message: str
):
    result = imdb(trained_workspace, "tsne", *args)
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    # One red line, the last; before it at most the run each model key means.
    *said, last = result.output.strip().splitlines()
    assert last.startswith("error:") and message in last
    assert not [line for line in said if "error" in line or "Traceback" in line]


def test_runs_on_different_data_are_refused(trained_workspace: Workspace):
    runs = [resolve_run(trained_workspace, model) for model in MODELS]
    caches = [cache_of_run(trained_workspace, run.ledger) for run in runs]
    other = TokenizedCache(
        caches[1].path, {**caches[1].manifest, "data_fingerprint": "0123456789ab"}
    )
    with pytest.raises(ImdbError, match="trained on different data"):
        embeddings.check_same_reviews(runs, [caches[0], other])


def test_two_runs_of_one_model_are_told_apart_by_run_id(trained_workspace: Workspace):
    run = resolve_run(trained_workspace, "tiny-bert")
    other = Run(run.path, dataclasses.replace(run.ledger, run_id="second"))
    modern = resolve_run(trained_workspace, "tiny-modernbert")
    assert folders.run_labels([run, other, modern]) == [
        f"tiny-bert-{run.run_id}",
        "tiny-bert-second",
        "tiny-modernbert",
    ]
    with pytest.raises(ImdbError, match="the same run is named twice"):
        folders.run_labels([run, run])


def test_two_class_margins_rank_reviews_by_their_distance_from_one_half():
    """For two classes, top-1 minus top-2 is 2|p - 0.5|: the boundary ranking is the one the
    two-class code made from P(class 1), for new ledgers' rows and old ledgers' P(class 1)."""
    logits = torch.from_numpy(np.random.default_rng(3).normal(size=(500, 2)).astype(np.float32))
    rows = torch.softmax(logits, -1).numpy()  # what training.inference.predict keeps
    p = rows[:, 1].astype(np.float64)
    ids = np.arange(len(p))
    by_distance = np.lexsort((ids, np.abs(p - 0.5)))
    old = ledger.TestRecord(0, "", "test", 0.0, 0.0, len(p), 0.0, probs=p.tolist()).prob_matrix()
    for matrix in (rows, old):
        margins = embeddings.margins(matrix)
        np.testing.assert_allclose(margins, 2 * np.abs(p - 0.5), atol=1e-6)
        np.testing.assert_array_equal(np.lexsort((ids, margins)), by_distance)
