"""`imdb export`: a Hugging Face folder that transformers loads and predicts with exactly as
`imdb predict` does, an ONNX model that onnxruntime runs as torch does, and the refusals."""

from __future__ import annotations

import collections
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

from imdb_cli.data.tokenized import load_texts
from imdb_cli.errors import ImdbError
from imdb_cli.handoff import export, export_folder, predict
from imdb_cli.handoff import onnx as onnx_graphs
from imdb_cli.handoff.review_files import from_texts
from imdb_cli.runs.caches import cache_of_run
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
    onnx = ("--format", "onnx")
    return {
        "fp32": exported_once(trained_root, base / "fp32", "tiny-bert", *onnx),  # the default
        "plain": exported_once(
            trained_root, base / "plain", "tiny-bert", *onnx, "--onnx-graph", "plain"
        ),
        "int8": exported_once(
            trained_root, base / "int8", "tiny-modernbert", *onnx, "--quantize", "int8"
        ),
        "static": exported_once(
            trained_root, base / "static", "tiny-bert", *onnx, "--quantize", "int8-static"
        ),
    }


@pytest.mark.parametrize("graph", ["fp32", "plain"])
def test_onnxruntime_gives_torchs_probabilities(
    onnx_folders: dict[str, Path], trained_root: Path, graph: str
) -> None:
    _, texts = split_texts(trained_root, "tiny-bert")
    expected = scores(trained_root, "tiny-bert", texts)
    got = scores(trained_root, str(onnx_folders[graph]), texts)
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
    assert "| ONNX fp32, optimized graph |" in card and "| ONNX int8, optimized graph |" in card
    assert "int8 minus fp32" in card
    _, texts = split_texts(trained_root, "tiny-modernbert")
    got = scores(trained_root, str(folder), texts)
    expected = scores(trained_root, "tiny-modernbert", texts)
    assert np.abs(got - expected).max() < 0.2  # close, not equal: int8 weights
    assert np.allclose(got.sum(axis=1), 1.0, atol=1e-5)


def test_static_int8_scores_a_review_alike_in_any_batch_and_the_card_says_dynamic_does_not(
    onnx_folders: dict[str, Path], trained_root: Path
) -> None:
    _, texts = split_texts(trained_root, "tiny-bert")
    workspace = Workspace(trained_root)

    def scored(batch_size: int) -> np.ndarray:
        target = str(onnx_folders["static"])
        predictor = predict.load_predictor(workspace, target, device="cpu", batch_size=batch_size)
        return np.concatenate(
            [c.probs for c in predict.predict_reviews(predictor, from_texts(texts))]
        )

    assert np.array_equal(
        scored(1), scored(64)
    )  # fixed activation ranges: batch-mates do not matter
    card = (onnx_folders["int8"] / "README.md").read_text()
    assert "probabilities depend on the reviews batched with it" in card


def ops_of(folder: Path) -> collections.Counter[str]:
    import onnx

    return collections.Counter(node.op_type for node in onnx.load(folder / "model.onnx").graph.node)


def test_the_default_graph_is_fused_one_attention_and_two_skip_layer_norms_per_layer(
    onnx_folders: dict[str, Path],
) -> None:
    """tiny-bert has 2 layers: the fused graph holds 2 Attention and 4 SkipLayerNormalization
    nodes, as config.json says; the plain graph none of onnxruntime's fused ops."""
    fused, plain = (export_folder.read_export(onnx_folders[n]) for n in ("fp32", "plain"))
    assert fused.onnx_graph == "optimized" and plain.onnx_graph == "plain"
    ops = ops_of(onnx_folders["fp32"])
    assert ops["Attention"] == 2 and ops["SkipLayerNormalization"] == 4
    assert ops["BiasGelu"] == 2 and ops["EmbedLayerNormalization"] == 1
    fusions = fused.config["onnx_fusions"]
    assert fusions["layers"] == 2
    assert {op: ops[op] for op in fusions["fused"]} == fusions["fused"]
    plain_ops = ops_of(onnx_folders["plain"])
    assert not {"Attention", "SkipLayerNormalization", "BiasGelu"} & set(plain_ops)
    assert plain.config["onnx_fusions"] is None


def test_modernbert_fuses_its_layer_norms_and_gelu_but_not_its_attention(
    onnx_folders: dict[str, Path],
) -> None:
    """Rotary embeddings and local attention match none of onnxruntime's attention patterns:
    the graph is still the optimized one (2 layers: 4 SkipLayerNormalization, 2 Gelu)."""
    export = export_folder.read_export(onnx_folders["int8"])
    assert export.onnx_graph == "optimized"
    fused = export.config["onnx_fusions"]["fused"]
    assert fused["SkipLayerNormalization"] == 4 and fused["Gelu"] == 2
    assert "Attention" not in fused and "Attention" not in ops_of(onnx_folders["int8"])
    card = (onnx_folders["int8"] / "README.md").read_text()
    assert "4 SkipLayerNormalization, 1 LayerNormalization, 2 Gelu (2 layers)" in card


def card_accuracy(card: str, row: str) -> float:
    line = next(line for line in card.splitlines() if line.startswith(f"| {row} |"))
    return float(line.split("|")[2])


def test_the_card_says_which_graph_and_quantization_with_each_accuracy(
    onnx_folders: dict[str, Path], trained_root: Path
) -> None:
    """Each accuracy in the card is what imdb predict gets from that model on the test split."""
    workspace = Workspace(trained_root)
    cache = cache_of_run(workspace, resolve_run(workspace, "tiny-bert").ledger)
    _, texts, labels = load_texts(cache, "test")
    ledger = resolve_run(workspace, "tiny-bert").ledger
    fp32 = (onnx_folders["fp32"] / "README.md").read_text()
    assert "ONNX model (optimized graph, fp32)" in fp32
    assert "- Graph: optimized." in fp32 and "2 Attention, 4 SkipLayerNormalization" in fp32
    assert "- Quantization: none" in fp32
    assert card_accuracy(fp32, "torch (the run's checkpoint)") == round(ledger.test.acc, 4)  # type: ignore[union-attr]
    static = (onnx_folders["static"] / "README.md").read_text()
    assert "- Quantization: int8, static (activation ranges calibrated on" in static
    plain = (onnx_folders["plain"] / "README.md").read_text()
    assert (
        "- Graph: plain, as torch.onnx's dynamo exporter wrote it (`--onnx-graph plain`)" in plain
    )
    for card, folder, row in (
        (fp32, "fp32", "ONNX fp32, optimized graph"),
        (plain, "plain", "ONNX fp32, plain graph"),
        (static, "static", "ONNX int8, optimized graph"),
    ):
        predicted = scores(trained_root, str(onnx_folders[folder]), texts).argmax(axis=1)
        assert card_accuracy(card, row) == round(float((predicted == labels).mean()), 4), row
    config = json.loads((onnx_folders["static"] / "config.json").read_text())
    assert config["onnx_quantization"]["method"] == "static"
    assert config["onnx_quantization"]["calibration_reviews"] > 0


def test_a_fused_graph_that_fails_is_replaced_by_the_plain_one_with_a_warning(
    trained_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(*args: object) -> None:
        raise ImdbError("onnxruntime's transformer optimizer failed: no match")

    monkeypatch.setattr(export.onnx_graphs, "fused_graph", failing)
    out = tmp_path / "out"
    result = imdb(trained_root, "export", "tiny-bert", "--format", "onnx", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "the fused graph was not kept" in result.output and "plain graph" in result.output
    assert export_folder.read_export(out).onnx_graph == "plain"
    assert "optimizer failed: no match" in (out / "README.md").read_text()


def test_an_exporter_failure_is_one_red_line_and_writes_nothing(
    trained_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As torch.onnx's dynamo exporter fails on ModernBERT with eager attention."""

    def failing(*args: object, **kwargs: object) -> None:
        raise IndexError("list index out of range")

    monkeypatch.setattr(torch.onnx, "export", failing)
    out = tmp_path / "out"
    args = ("tiny-modernbert", "--format", "onnx", "--out", str(out))
    result = imdb(trained_root, "export", *args)
    assert_one_red_line(result, "torch.onnx.export failed: list index out of range")
    assert "the fused graph was not kept" in result.output  # the optimized one failed first
    assert list(tmp_path.iterdir()) == []


def test_predict_reads_an_onnx_export_from_before_the_fused_graph(
    onnx_folders: dict[str, Path], trained_root: Path, tmp_path: Path
) -> None:
    old = tmp_path / "old"
    shutil.copytree(onnx_folders["plain"], old)
    config = json.loads((old / "config.json").read_text())
    for key in ("onnx_graph", "onnx_fusions"):
        del config[key]
    (old / "config.json").write_text(json.dumps(config))
    assert export_folder.read_export(old).onnx_graph == "plain"
    texts = ["great fun, superb", "boring and bland"]
    assert (
        np.abs(scores(tmp_path, str(old), texts) - scores(trained_root, "tiny-bert", texts)).max()
        < 1e-4
    )


def test_the_int8_kernels_follow_the_cpu_flags() -> None:
    avx2 = onnx_graphs.kernels_for(["avx2"])
    assert "saturating" in avx2[0] and "exact" in avx2[1] and "generic" in avx2[2]
    assert "converted to fp32" in avx2[3]
    vnni = onnx_graphs.kernels_for(["avx2", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16"])
    assert vnni[0].startswith("AVX512-VNNI") and vnni[3] == "AVX512-BF16"
    assert onnx_graphs.kernels_for(["avx2", "avx_vnni"])[0].startswith("AVX-VNNI")
    assert onnx_graphs.kernels_for(["avx2", "avx_vnni_int8"])[2] == "AVX-VNNI-INT8"


def test_the_saturation_probe_agrees_with_the_kernel_the_flags_select() -> None:
    """onnxruntime's U8S8 kernel saturates exactly where the flags say it is vpmaddubsw's."""
    pytest.importorskip("onnxruntime", reason="the onnx extra: pip install -e '.[onnx]'")
    kernels = onnx_graphs.int8_kernels()
    assert kernels.u8s8_saturates == ("saturating" in kernels.u8s8)
    assert kernels.lines()[0].startswith("CPU: ")


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
