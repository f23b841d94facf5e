"""`imdb attention`: attention maps from eager copies of two trained tiny runs."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from analysis_support import MODELS, copy_trained, imdb
from cli_support import assert_one_red_line
from matplotlib.image import imread
from training_support import one_thread
from typer.testing import Result

from imdb_cli.analysis import attention as core
from imdb_cli.analysis.attention import EagerModel, LayerSelection
from imdb_cli.analysis.embeddings import reviews_from_errors
from imdb_cli.data.tokenized import TokenizedSplit
from imdb_cli.errors import ImdbError
from imdb_cli.runs import checkpoints
from imdb_cli.runs.select import resolve_run
from imdb_cli.training.inference import predict
from imdb_cli.workspace import Workspace

pytestmark = pytest.mark.usefixtures("single_thread")  # conftest.py

BOTH = ",".join(MODELS)
# About 60 tokens: longer than tiny-modernbert's local window (±16) and shorter than 128.
REVIEW = (
    "I went in expecting a dull remake, but the cast is wonderful and the script is sharp. "
    "The middle drags a little, and the score is too loud in places, yet the final scene "
    "moved me more than anything I have seen this year. Brilliant, touching, funny."
)


@dataclass(frozen=True)
class Explained:
    """One review explained by both models (--layer last, the default) and by tiny-modernbert
    with --layer all."""

    workspace: Workspace
    last: Result
    every: Result

    def folder(self, which: str) -> Path:
        found = self.workspace.analysis.glob(f"attention/2*/review/*_{which}.json")
        (folder,) = {path.parent for path in found}
        return folder

    def json(self, model: str, which: str) -> dict:
        path = self.folder(which) / f"{model}_{which}.json"
        return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def explained(trained_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Explained:
    trained_workspace = copy_trained(trained_root, tmp_path_factory.mktemp("attention") / "ws")
    previous = one_thread()
    try:
        last = imdb(trained_workspace, "attention", "--review", REVIEW, "--models", BOTH)
        every = imdb(
            trained_workspace,
            "attention",
            "--review",
            REVIEW,
            "--models",
            "tiny-modernbert",
            "--layer",
            "all",
        )
    finally:
        torch.set_num_threads(previous)
    return Explained(trained_workspace, last, every)


def latest_json(trained_workspace: Workspace, model: str, which: str) -> dict:
    folder = trained_workspace.analysis / "attention" / "latest" / "review"
    return json.loads((folder / f"{model}_{which}.json").read_text(encoding="utf-8"))


def test_attention_writes_heatmap_bars_and_json_for_each_model(explained: Explained):
    assert explained.last.exit_code == 0, explained.last.output
    folder = explained.folder("layer1")
    for model in MODELS:
        heatmap = imread(folder / f"{model}_layer1_heatmap.png")
        bars = imread(folder / f"{model}_layer1_received.png")
        count = len(explained.json(model, "layer1")["tokens"])
        # 0.16 in per token + 2.5 in (plus room for the colour bar), at 100 DPI.
        side = 0.16 * count + 2.5
        assert heatmap.shape[:2] == (round((side + 0.6) * 100), round((side + 1.2) * 100))
        assert bars.shape[:2] == (480, round(max(side, 10) * 100))
        assert heatmap.std() > 0.05  # a drawn map, not a blank canvas
        prediction = explained.json(model, "layer1")["prediction"]
        prob = prediction["probs"][prediction["label"]]
        assert f"{prob:.3f}" in explained.last.output  # each model's prediction is shown
        assert prediction["label"] in ("negative", "positive")  # named by the run's labels
    assert folder.parent.name in explained.last.output


def test_all_layers_are_drawn_as_a_grid(explained: Explained):
    assert explained.every.exit_code == 0, explained.every.output
    folder = explained.folder("all-layers")
    # Two layers: one row of two 4.2-inch panels plus a title band, at 100 DPI.
    assert imread(folder / "tiny-modernbert_all-layers_heatmap.png").shape[:2] == (480, 840)


def test_each_attention_row_sums_to_one_over_the_review_tokens(explained: Explained):
    for model, which in (("tiny-modernbert", "all-layers"), ("tiny-bert", "layer1")):
        saved = explained.json(model, which)
        for layer in saved["layers"]:
            matrix = np.asarray(layer["matrix"])
            assert matrix.shape == (len(saved["tokens"]), len(saved["tokens"]))
            np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-4)
        assert sum(saved["received"]) == pytest.approx(1.0, abs=1e-4)


def test_each_head_row_sums_to_one_too(trained_workspace: Workspace):
    for model in MODELS:
        eager = EagerModel.load(resolve_run(trained_workspace, model))
        for head in ("0", "1"):
            result = eager.attention(REVIEW, LayerSelection.parse("all", head))
            for layer in result.layers:
                assert layer.head == int(head)
                np.testing.assert_allclose(layer.matrix.sum(axis=1), 1.0, atol=1e-5)


def test_modernbert_local_layer_attends_only_inside_its_window(explained: Explained):
    saved = explained.json("tiny-modernbert", "all-layers")
    count = len(saved["tokens"])
    assert count > 40
    global_layer, local_layer = saved["layers"]
    assert (global_layer["layer_type"], global_layer["window"]) == ("full_attention", None)
    assert (local_layer["layer_type"], local_layer["window"]) == ("sliding_attention", 16)
    distance = np.abs(np.subtract.outer(np.arange(count), np.arange(count)))
    local = np.asarray(local_layer["matrix"])
    assert np.all(local[distance > 16] == 0.0)
    assert np.all(local[distance <= 16] > 0.0)
    full = np.asarray(global_layer["matrix"])
    assert np.all(full[distance > 16] > 0.0)  # the global layer sees the whole review
    bert = explained.json("tiny-bert", "layer1")
    assert {layer["layer_type"] for layer in bert["layers"]} == {"full_attention"}


def test_json_tokens_are_the_run_tokenizers_tokens_with_special_tokens_kept(
    explained: Explained,
):
    for model in MODELS:
        tokenizer = resolve_run(explained.workspace, model).tokenizer()
        ids = tokenizer(REVIEW, truncation=True, max_length=128)["input_ids"]
        saved = explained.json(model, "layer1")
        assert saved["input_ids"] == ids
        assert saved["tokens"] == tokenizer.convert_ids_to_tokens(ids)
        assert saved["tokens"][0] == "[CLS]" and saved["tokens"][-1] == "[SEP]"
        assert saved["special"][0] and saved["special"][-1] and not any(saved["special"][1:-1])
        assert saved["layers"][0]["layer"] == 1  # --layer last of a 2-layer model
        special_share = sum(
            r for r, s in zip(saved["received"], saved["special"], strict=True) if s
        )
        assert saved["special_token_mass"] == pytest.approx(special_share, abs=1e-5)


def test_prediction_of_the_eager_copy_is_the_classifiers(trained_workspace: Workspace):
    for model in MODELS:
        run = resolve_run(trained_workspace, model)
        eager = EagerModel.load(run).attention(REVIEW, LayerSelection())
        fast, _ = checkpoints.load_classifier(run)  # the default (SDPA) kernels
        ids = eager.review.input_ids
        split = TokenizedSplit(
            review_ids=np.array([0]),
            input_ids=np.array([ids], dtype=np.int32),
            lengths=np.array([len(ids)], dtype=np.int32),
            labels=np.array([1]),
            pad_token_id=0,
        )
        predicted = predict(fast, split, batch_size=1, device=torch.device("cpu"))
        np.testing.assert_allclose(eager.probs, predicted.probs[0], atol=1e-5)


def test_a_model_without_attention_maps_is_an_error_not_a_placeholder(
    trained_workspace: Workspace, monkeypatch: pytest.MonkeyPatch
):
    real_load = checkpoints.load_classifier

    def load_fast(run, checkpoint="best", attn_implementation=None):  # type: ignore[no-untyped-def]
        return real_load(run, checkpoint, attn_implementation="sdpa")

    monkeypatch.setattr(checkpoints, "load_classifier", load_fast)
    result = imdb(trained_workspace, "attention", "--review", REVIEW, "--models", "tiny-bert")
    assert result.exit_code != 0
    assert "returned no attention maps" in result.output and "sdpa" in result.output
    assert "Traceback" not in result.output
    assert not list((trained_workspace.analysis / "attention").rglob("*.png"))


def test_a_long_review_is_truncated_with_a_warning_that_counts_the_cut_tokens(
    trained_workspace: Workspace,
):
    long_review = " ".join(["great"] * 300)  # 300 tokens + [CLS] + [SEP], max length 128
    result = imdb(trained_workspace, "attention", "--review", long_review, "--models", "tiny-bert")
    assert result.exit_code == 0, result.output
    assert "174 tokens cut to fit tiny-bert's max length of 128" in result.output
    saved = latest_json(trained_workspace, "tiny-bert", "layer1")
    assert len(saved["tokens"]) == 128 and saved["cut_tokens"] == 174


def test_from_errors_takes_disagreements_of_the_latest_tsne_first(trained_workspace: Workspace):
    tsne = imdb(trained_workspace, "tsne", *MODELS, "--n-samples", "40", "--perplexity", "10")
    assert tsne.exit_code == 0, tsne.output
    latest_csv = trained_workspace.analysis / "tsne" / "latest" / "boundary_samples.csv"
    with latest_csv.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    disagree = sorted(
        (r for r in rows if r["disagree"] == "True"), key=lambda r: -float(r["spread"])
    )
    expected = [int(r["review_id"]) for r in disagree] + [
        int(r["review_id"]) for r in rows if r["disagree"] == "False"
    ]
    assert disagree, "the fixture's two models should disagree on some reviews"
    _, listed = reviews_from_errors(trained_workspace, len(rows))
    assert [r.review_id for r in listed] == expected

    result = imdb(trained_workspace, "attention", "--from-errors", "1", "--models", "tiny-bert")
    assert result.exit_code == 0, result.output
    first = listed[0]
    folder = trained_workspace.analysis / "attention" / "latest"
    assert [p.name for p in folder.iterdir()] == [f"review-{first.review_id}"]
    saved = json.loads((folder / f"review-{first.review_id}" / "tiny-bert_layer1.json").read_text())
    assert saved["review_id"] == first.review_id and saved["text"] == first.text


def test_layer_and_head_choices_are_checked_against_each_model():
    selection = LayerSelection.parse("5", "mean")
    with pytest.raises(ImdbError, match=r"--layer 5: model 'tiny-bert' has layers 0\.\.1"):
        selection.layers_of("tiny-bert", 2)
    with pytest.raises(ImdbError, match=r"--head 2: model 'm' has heads 0\.\.1"):
        LayerSelection.parse("last", "2").head_of("m", 2)
    assert LayerSelection.parse("ALL", "Mean").layers_of("m", 3) == [0, 1, 2]
    assert core.LayerSelection().layers_of("m", 12) == [11]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--review", ""], "--review is empty"),
        (["--review", "   \n\t "], "--review is empty"),
        (["--review", REVIEW, "--layer", "2"], "--layer 2: model 'tiny-bert' has layers 0..1"),
        (["--review", REVIEW, "--head", "7"], "--head 7: model 'tiny-bert' has heads 0..1"),
        (["--review", REVIEW, "--layer", "first"], "--layer 'first': use last, all, or"),
        (["--review", REVIEW, "--head", "-1"], "--head '-1': use mean or a head number"),
        (["--review-file", "missing.txt"], "--review-file missing.txt: no such file"),
        ([], "give exactly one of --review TEXT, --review-file PATH or --from-errors N"),
        (["--review", "a", "--from-errors", "2"], "(got --review and --from-errors)"),
        (["--from-errors", "2"], "run `imdb tsne MODEL [MODEL ...]` first"),
        (["--from-errors", "0"], "--from-errors must be at least 1"),
        (["--review", REVIEW, "--models", "tiny-bert,minilm"], "train minilm`"),
        (["--review", REVIEW, "--models", " , "], "--models: give at least one model key"),
        (["--review", REVIEW, "--device", "tpu"], "--device must be one of auto, cpu, cuda"),
    ],
)
def test_bad_attention_input_is_one_red_line_without_traceback(
    trained_workspace: Workspace, args: list[str], message: str
):
    models = [] if "--models" in args else ["--models", "tiny-bert"]
    result = imdb(trained_workspace, "attention", *args, *models)
    assert result.exit_code != 0
    assert message in result.output, result.output
    assert "Traceback" not in result.output
    # Progress lines ("loading ...") may come first; the error is the one red line, last.
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("error:") and sum(line.startswith("error:") for line in lines) == 1


def test_without_models_it_uses_every_model_with_a_completed_run(trained_workspace: Workspace):
    result = imdb(trained_workspace, "attention", "--review", REVIEW)
    assert result.exit_code == 0, result.output
    folder = trained_workspace.analysis / "attention" / "latest" / "review"
    assert {p.name for p in folder.glob("*.json")} == {
        "tiny-bert_layer1.json",
        "tiny-modernbert_layer1.json",
    }


def test_without_models_and_without_runs_it_names_the_workspace(tmp_path: Path):
    empty = Workspace(tmp_path / "empty")
    result = imdb(empty, "attention", "--review", REVIEW)
    assert_one_red_line(result, f"no completed runs in {empty.runs}", "imdb train MODEL")


def test_a_review_file_that_is_not_utf8_is_refused(trained_workspace: Workspace, tmp_path: Path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("Un film tr\xe8s r\xe9ussi".encode("latin-1"))
    result = imdb(
        trained_workspace, "attention", "--review-file", str(path), "--models", "tiny-bert"
    )
    assert result.exit_code != 0
    assert f"--review-file {path}: not UTF-8 text (byte 10)" in result.output


def test_a_review_file_is_read_and_named_after_its_stem(
    trained_workspace: Workspace, tmp_path: Path
):
    path = tmp_path / "my review.txt"
    path.write_text("A warm, funny little film.", encoding="utf-8")
    result = imdb(
        trained_workspace, "attention", "--review-file", str(path), "--models", "tiny-bert"
    )
    assert result.exit_code == 0, result.output
    folder = trained_workspace.analysis / "attention" / "latest" / "my_review"
    saved = json.loads((folder / "tiny-bert_layer1.json").read_text())
    assert saved["text"] == "A warm, funny little film."
