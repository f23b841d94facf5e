"""`imdb export`: a Hugging Face folder that transformers loads and predicts with exactly as
`imdb predict` does, an ONNX model that onnxruntime runs as torch does, and the refusals."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from analysis_support import copy_trained
from cli_support import assert_one_red_line, follow_pip_hint
from predict_support import imdb, jsonl_rows, probs_of, split_texts
from training_support import one_thread

from imdb_cli.handoff import export, export_folder, predict
from imdb_cli.handoff.review_files import from_texts
from imdb_cli.runs.select import resolve_run
from imdb_cli.workspace import Workspace

pytestmark = pytest.mark.usefixtures("single_thread")  # conftest.py

LABELS = ["negative", "positive"]


def scores(root: Path, target: str, texts: list[str]) -> np.ndarray:
    predictor = predict.load_predictor(Workspace(root), target, device="cpu")
    return np.concatenate([c.probs for c in predict.predict_reviews(predictor, from_texts(texts))])


def pipeline_scores(folder: Path, texts: list[str]) -> np.ndarray:
    """What a user without imdb gets: the pipeline, called the usual way (no truncation)."""
    from transformers import pipeline

    classify = pipeline("text-classification", model=str(folder), trust_remote_code=True)
    rows = classify(texts, top_k=None, batch_size=8)
    return np.array(
        [[{r["label"]: r["score"] for r in row}[n.upper()] for n in LABELS] for row in rows]
    )


def exported_once(root: Path, out: Path, model: str, *args: str) -> Path:
    """`imdb export MODEL --out OUT ARGS` on one thread (module fixtures run outside the
    single_thread fixture)."""
    previous = one_thread()
    try:
        result = imdb(root, "export", model, "--out", str(out), *args)
    finally:
        torch.set_num_threads(previous)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def hf_folders(
    trained_root: Path, head_tail_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("hf")
    return {
        "tiny-bert": exported_once(trained_root, base / "bert", "tiny-bert"),
        "tiny-modernbert": exported_once(trained_root, base / "modernbert", "tiny-modernbert"),
        "head+tail": exported_once(head_tail_root, base / "head-tail", "tiny-bert"),
    }


# --------------------------------------------------------------------------- hf


def test_the_hf_folder_holds_weights_config_code_tokenizer_and_a_card(
    hf_folders: dict[str, Path], trained_root: Path
) -> None:
    folder = hf_folders["tiny-bert"]
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "modeling_imdb.py", "README.md"} <= names
    assert "tokenizer.json" in names or "vocab.txt" in names
    config = json.loads((folder / "config.json").read_text())
    assert config["id2label"] == {"0": "NEGATIVE", "1": "POSITIVE"}
    assert config["label_names"] == LABELS
    assert (
        config["auto_map"]["AutoModelForSequenceClassification"] == "modeling_imdb.ImdbClassifier"
    )
    assert config["truncation"]["max_length"] == 128
    ledger = resolve_run(Workspace(trained_root), "tiny-bert").ledger
    card = (folder / "README.md").read_text()
    assert f"{ledger.test.acc:.4f} (95% Wilson interval" in card  # type: ignore[union-attr]
    assert f"best epoch {ledger.best_epoch}" in card
    assert ledger.data.data_fingerprint in card
    assert 'pipeline("text-classification"' in card and "trust_remote_code=True" in card
    assert f"imdb predict {folder} " in card  # the folder as --out named it
    assert "masked mean" in card


@pytest.mark.parametrize("which", ["tiny-bert", "tiny-modernbert", "head+tail"])
def test_the_pipeline_gives_imdb_predicts_probabilities(
    hf_folders: dict[str, Path], trained_root: Path, head_tail_root: Path, which: str
) -> None:
    """100 reviews (the test split, then validation reviews to make up 100), many longer than
    the model's max length: the pipeline's usual call gets them whole, the model cuts them."""
    root = head_tail_root if which == "head+tail" else trained_root
    model = "tiny-bert" if which == "head+tail" else which
    _, texts = split_texts(root, model, "test")
    _, more = split_texts(root, model, "val")
    texts = (texts + more)[:100]
    expected = scores(root, model, texts)
    got = pipeline_scores(hf_folders[which], texts)
    assert np.abs(got - expected).max() < 1e-5
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()


def test_automodel_loads_the_folder_with_its_masked_mean_head(hf_folders: dict[str, Path]) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = hf_folders["tiny-bert"]
    model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    texts = ["great fun", "a dull, tedious and very long film " * 3]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        probs = model(**batch).logits.softmax(-1).numpy()
    assert np.abs(probs - scores(folder.parent, str(folder), texts)).max() < 1e-5


@pytest.mark.parametrize("model", ["tiny-bert", "tiny-modernbert"])
def test_imdb_predict_reads_the_folder_without_running_its_code(
    hf_folders: dict[str, Path], trained_root: Path, tmp_path: Path, model: str
) -> None:
    folder = tmp_path / "export"
    shutil.copytree(hf_folders[model], folder)
    (folder / "modeling_imdb.py").write_text("raise RuntimeError('the export code ran')\n")
    texts = ["great fun, superb", "boring and bland"]
    result = imdb(
        trained_root,
        "predict",
        str(folder),
        "--format",
        "jsonl",
        "--text",
        texts[0],
        "--text",
        texts[1],
    )
    assert result.exit_code == 0, result.output
    rows = jsonl_rows(result.stdout)
    assert {row["label"] for row in rows} <= set(LABELS)  # the run's names, not NEGATIVE
    assert np.abs(probs_of(rows, LABELS) - scores(trained_root, model, texts)).max() < 1e-6


def test_an_export_whose_tokenizer_or_extra_code_asks_to_run_is_refused(
    hf_folders: dict[str, Path], trained_root: Path, tmp_path: Path
) -> None:
    asking = tmp_path / "asking"
    shutil.copytree(hf_folders["tiny-bert"], asking)
    tokenizer_config = json.loads((asking / "tokenizer_config.json").read_text())
    tokenizer_config["auto_map"] = {"AutoTokenizer": ["evil.Tokenizer", None]}
    (asking / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    extra = tmp_path / "extra"
    shutil.copytree(hf_folders["tiny-bert"], extra)
    (extra / "evil.py").write_text("raise RuntimeError('ran')\n")
    for folder, why in ((asking, "tokenizer_config.json has 'auto_map'"), (extra, "evil.py")):
        result = imdb(trained_root, "predict", str(folder), "--text", "good")
        assert_one_red_line(result, str(folder), why, "refused")


# --------------------------------------------------------------------------- onnx


@pytest.fixture(scope="module")
def onnx_folders(trained_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("onnxruntime", reason="the onnx extra: pip install -e '.[onnx]'")
    base = tmp_path_factory.mktemp("onnx")
    return {
        "fp32": exported_once(trained_root, base / "fp32", "tiny-bert", "--format", "onnx"),
        "int8": exported_once(
            trained_root, base / "int8", "tiny-modernbert", "--format", "onnx", "--quantize", "int8"
        ),
    }


def test_onnxruntime_gives_torchs_probabilities(
    onnx_folders: dict[str, Path], trained_root: Path
) -> None:
    _, texts = split_texts(trained_root, "tiny-bert")
    expected = scores(trained_root, "tiny-bert", texts)
    got = scores(trained_root, str(onnx_folders["fp32"]), texts)
    assert np.abs(got - expected).max() < 1e-4


def test_the_onnx_graph_takes_any_batch_size_and_length(onnx_folders: dict[str, Path]) -> None:
    import onnxruntime

    folder = onnx_folders["fp32"]
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"))
    model = export_folder.read_export(folder)
    assert model.max_length == 128 and model.label_names == LABELS
    rng = np.random.default_rng(0)
    for batch, width in ((1, 5), (7, 128), (2, 33)):
        ids = rng.integers(1000, 2000, size=(batch, width)).astype(np.int64)
        mask = np.ones_like(ids)
        mask[0, width // 2 :] = 0
        logits, pooled = session.run(None, {"input_ids": ids, "attention_mask": mask})
        assert logits.shape == (batch, 2) and pooled.shape == (batch, 64)
        assert np.isfinite(logits).all()
        assert torch.tensor(logits).softmax(-1).sum(-1).allclose(torch.ones(batch))


def test_int8_export_reports_its_accuracy_next_to_fp32(
    onnx_folders: dict[str, Path], trained_root: Path
) -> None:
    folder = onnx_folders["int8"]
    config = json.loads((folder / "config.json").read_text())
    assert config["quantization"] == "int8"
    card = (folder / "README.md").read_text()
    assert "| ONNX fp32 |" in card and "| ONNX int8 |" in card
    assert "int8 minus fp32" in card
    _, texts = split_texts(trained_root, "tiny-modernbert")
    got = scores(trained_root, str(folder), texts)
    expected = scores(trained_root, "tiny-modernbert", texts)
    assert np.abs(got - expected).max() < 0.2  # close, not equal: int8 weights
    assert np.allclose(got.sum(axis=1), 1.0, atol=1e-5)


# --------------------------------------------------------------------------- refusals


def test_refusals_are_one_red_line_and_write_nothing(trained_root: Path, tmp_path: Path) -> None:
    workspace = copy_trained(trained_root, tmp_path / "ws")
    run = resolve_run(workspace, "tiny-bert")
    unfinished = workspace.runs / "tiny-bert" / "unfinished"
    shutil.copytree(run.path, unfinished)
    ledger = json.loads((unfinished / "ledger.json").read_text())
    ledger.update(run_id="unfinished", status="running", test=None)
    (unfinished / "ledger.json").write_text(json.dumps(ledger))
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("mine")
    out = tmp_path / "out"
    cases = {
        "untrained model": (["minilm", "--out", str(out)], ["minilm", "no completed run"]),
        "unfinished run": (
            [str(unfinished), "--out", str(out)],
            ["unfinished", "no completed best checkpoint"],
        ),
        "not empty": (["tiny-bert", "--out", str(full)], ["--out", "not empty", "--force"]),
        "int8 in hf": (
            ["tiny-bert", "--out", str(out), "--quantize", "int8"],
            ["--quantize int8 needs --format onnx"],
        ),
        "bad format": (["tiny-bert", "--out", str(out), "--format", "tf"], ["--format", "onnx"]),
    }
    for name, (args, fragments) in cases.items():
        result = imdb(workspace.root, "export", *args)
        try:
            assert_one_red_line(result, *fragments)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {result.output}") from exc
        assert not out.exists(), name
    assert [p.name for p in full.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full", "ws"]


def test_an_interrupted_export_leaves_nothing(
    trained_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "_write_hf", interrupted)
    result = imdb(trained_root, "export", "tiny-bert", "--out", str(tmp_path / "out"))
    assert result.exit_code == 130
    assert list(tmp_path.iterdir()) == []


def test_onnx_without_its_packages_says_how_to_install_them(
    trained_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    result = imdb(
        trained_root, "export", "tiny-bert", "--format", "onnx", "--out", str(tmp_path / "out")
    )
    assert_one_red_line(result, "--format onnx needs", "(not installed): pip install ")
    assert list(tmp_path.iterdir()) == []
    assert "onnxruntime>=1.20" in follow_pip_hint(result.output)  # followed as written


# --------------------------------------------------------------------------- real MiniLM


@pytest.mark.slow
def test_a_trained_minilm_exports_to_folders_that_agree_with_imdb_predict(
    real_imdb_dir: Path, tmp_path: Path
) -> None:
    """Real pretrained weights on real reviews (a few minutes): 100 test reviews, the
    pipeline within 1e-5 of imdb predict, onnxruntime within 1e-4 of torch."""
    root = tmp_path / "ws"
    for args in (
        ["prepare", "--models", "minilm", "--limit", "1000", "--data-dir", str(real_imdb_dir)],
        ["train", "minilm", "--epochs", "1", "--limit-train", "200"],
        ["export", "minilm", "--out", str(tmp_path / "hf")],
        ["export", "minilm", "--format", "onnx", "--out", str(tmp_path / "onnx")],
    ):
        result = imdb(root, *args)
        assert result.exit_code == 0, result.output
    _, texts = split_texts(root, "minilm")
    assert len(texts) == 100
    expected = scores(root, "minilm", texts)
    assert np.abs(pipeline_scores(tmp_path / "hf", texts) - expected).max() < 1e-5
    assert np.abs(scores(root, str(tmp_path / "onnx"), texts) - expected).max() < 1e-4
