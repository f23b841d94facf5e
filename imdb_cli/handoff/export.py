"""`imdb export`: a run's best checkpoint as a Hugging Face folder, or as ONNX (fp32 or int8).

    run ──export (hf)──▶ config.json (auto_map), model.safetensors, modeling_imdb.py (= model.py),
                         tokenizer files, README.md (the model card)
    run ──export (onnx)─▶ model.onnx, config.json, tokenizer files, README.md

The library does the work: `save_pretrained` writes the HF folder (weights, config with
auto_map, and the modeling file, copied because its classes are registered for the auto
classes); `handoff.onnx` writes the ONNX graph, fused by onnxruntime's transformer optimizer
by default (`--onnx-graph plain`: torch.onnx's dynamo graph as is), and quantizes it with
onnxruntime. Every export is checked before it is kept: the ONNX model against torch on real
reviews (a fused graph that differs falls back to the plain one), and its accuracy on the
run's test split, int8 next to fp32. The folder is filled under a temporary name and
renamed when complete (files.atomic_dir).
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers.tokenization_utils_base import VERY_LARGE_INTEGER

from imdb_cli import __version__, registry
from imdb_cli import model as imdb_model
from imdb_cli.console import info, progress, warn
from imdb_cli.data.encoding import Encoder
from imdb_cli.data.entry import configs_dir as dataset_configs_dir
from imdb_cli.data.tokenized import TokenizedSplit, load_split, load_texts
from imdb_cli.errors import ImdbError
from imdb_cli.files import FolderState, atomic_dir, clean_stale_temps, folder_state
from imdb_cli.handoff import export_folder
from imdb_cli.handoff import onnx as onnx_graphs
from imdb_cli.handoff.model_card import model_card
from imdb_cli.handoff.predict import (
    Predictor,
    classify,
    onnx_forward,
    onnx_inputs,
    tokenize,
    torch_forward,
)
from imdb_cli.model import EncoderForClassification, ImdbClassifier, ImdbClassifierConfig
from imdb_cli.runs import checkpoints
from imdb_cli.runs.caches import cache_of_run
from imdb_cli.runs.run import Run
from imdb_cli.runs.select import select_run
from imdb_cli.training.inference import shortest_first
from imdb_cli.workspace import Workspace

FORMATS = ("hf", "onnx")
# --quantize: int8 is dynamic (activation ranges per batch at run time, no calibration, and the
# fused attention quantized too); int8-static calibrates activation ranges on validation
# reviews (matrix products only). benchmarks/README.md compares them on MiniLM.
QUANTIZATIONS = {
    "int8": onnx_graphs.DYNAMIC,
    "int8-static": onnx_graphs.Quantization("static", "int8", "uint8", True, False, "QDQ"),
}
ONNX_TOLERANCE = 1e-4  # largest difference of a class probability, onnxruntime vs torch
CHECK_REVIEWS = 64  # test reviews the ONNX model is checked on against torch
CALIBRATION_REVIEWS = 256  # validation reviews static int8 calibrates on


@dataclass
class ExportResult:
    out: Path
    format: str
    quantization: str | None  # --quantize
    run: Run
    checkpoint: Path
    graph: str = "optimized"  # --onnx-graph asked for
    fusions: onnx_graphs.Fusions | None = None  # of the fused graph, when it was written
    graph_note: str | None = None  # why the fused graph was not written
    int8: onnx_graphs.Quantization | None = None  # how the int8 model was made
    # ONNX: largest |probability difference| vs torch on CHECK_REVIEWS test reviews.
    onnx_difference: float | None = None
    checked_reviews: int = 0
    # ONNX: test-split accuracy of the written graph, by precision ("fp32", "int8").
    accuracy: dict[str, float] = field(default_factory=dict)
    test_reviews: int = 0
    accuracy_note: str | None = None  # why accuracy was not measured

    @property
    def written_graph(self) -> str:
        return "optimized" if self.fusions is not None else "plain"


def check_options(fmt: str, quantize: str | None, graph: str = "optimized") -> None:
    if fmt not in FORMATS:
        raise ImdbError(f"--format must be one of {', '.join(FORMATS)} (got {fmt!r})")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ImdbError(f"--quantize must be {' or '.join(QUANTIZATIONS)} (got {quantize!r})")
    if quantize is not None and fmt != "onnx":
        raise ImdbError(f"--quantize {quantize} needs --format onnx")
    if graph not in onnx_graphs.GRAPHS:
        raise ImdbError(f"--onnx-graph must be {' or '.join(onnx_graphs.GRAPHS)} (got {graph!r})")
    if fmt == "onnx":
        export_folder.require_onnx("--format onnx")


def check_out(out: Path, force: bool, workspace: Workspace, run: Run) -> FolderState:
    """--out must be a new or empty folder, or with --force an earlier export (it holds
    export_folder.MARKER_NAME), and never inside or around imdb's own folders (the workspace, the
    run exported, model_configs/, dataset_configs/), whose --force would delete them. The
    folder's state, which must not change before the export is renamed into place."""
    if out.is_symlink():
        raise ImdbError(f"--out {out}: is a symbolic link; give the folder itself")
    if out.exists() and not out.is_dir():
        raise ImdbError(f"--out {out}: is a file, not a folder")
    where = out.resolve()
    protected = {
        "the workspace": workspace.root,
        "the run exported": run.path,
        "model_configs/": registry.configs_dir(),
        "dataset_configs/": dataset_configs_dir(),
    }
    for name, folder in protected.items():
        mine = folder.resolve()
        if where == mine:
            raise ImdbError(f"--out {out}: is {name}; export somewhere else")
        if where.is_relative_to(mine):
            raise ImdbError(f"--out {out}: lies inside {name} ({folder}); export outside it")
        if mine.is_relative_to(where):
            raise ImdbError(f"--out {out}: holds {name} ({folder}); export somewhere else")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise ImdbError(
                f"--out {out}: exists and is not empty (--force replaces an earlier imdb export)"
            )
        if not (out / export_folder.MARKER_NAME).is_file():
            raise ImdbError(
                f"--out {out}: --force replaces only a folder written by `imdb export` (it "
                f"holds {export_folder.MARKER_NAME}); this one is not, so it stays as it is"
            )
    for leftover in clean_stale_temps(out.parent, of=out.name):
        info(f"removed {leftover}, left by an interrupted earlier export to {out.name}")
    return folder_state(out)


def exportable_run(workspace: Workspace, target: str, dataset: str | None = None) -> Run:
    """The run to export: completed, with a tested best checkpoint."""
    selected = select_run(workspace, target, dataset)
    info(f"{target}: {selected.describe()}")
    run = selected.run
    ledger = run.ledger
    if ledger.status != "completed" or ledger.best_epoch is None or ledger.test is None:
        raise ImdbError(
            f"run {run.describe()} has no completed best checkpoint "
            f"(finish it with `{run.resume_invocation()}`)"
        )
    return run


def export(
    workspace: Workspace,
    target: str,
    out: Path,
    *,
    fmt: str = "hf",
    quantize: str | None = None,
    graph: str = "optimized",
    force: bool = False,
    dataset: str | None = None,
) -> ExportResult:
    """A model key (its newest completed run, on `dataset` when given), MODEL/RUN-ID or a run
    folder, exported to the folder `out`."""
    check_options(fmt, quantize, graph)
    run = exportable_run(workspace, target, dataset)
    state = check_out(out, force, workspace, run)
    info(f"loading the best checkpoint of {run.model}/{run.run_id}")
    model, path = checkpoints.load_classifier(run, "best")
    encoder = run.encoder()
    tokenizer = encoder.tokenizer
    result = ExportResult(out, fmt, quantize, run, path, graph=graph)
    hf_config = classifier_config(run, model, encoder, path)
    # The HF model cuts long reviews itself (as trained): its tokenizer must not cut them
    # first, even when asked to truncate without a max_length. The ONNX graph does not cut:
    # there `truncation=True` should cut to the run's length.
    tokenizer.model_max_length = VERY_LARGE_INTEGER if fmt == "hf" else encoder.max_length
    with atomic_dir(out, expected=state) as folder:
        export_folder.write_marker(folder, fmt, run)
        tokenizer.save_pretrained(folder)
        if fmt == "hf":
            info(f"writing the Hugging Face folder {out}")
            _write_hf(model, hf_config, folder)
        else:
            _write_onnx(model, hf_config, encoder, folder, workspace, result)
        (folder / export_folder.CARD_NAME).write_text(
            model_card(result, hf_config), encoding="utf-8"
        )
    return result


# --------------------------------------------------------------------------- config


def classifier_config(
    run: Run,
    model: EncoderForClassification,
    encoder: Encoder,
    checkpoint: Path,
) -> ImdbClassifierConfig:
    """The export's config.json: the classifier's config, naming the model code it carries
    (`auto_map`, for transformers users; imdb itself never follows it)."""
    names = run.ledger.label_names
    # Hugging Face sentiment models name their classes in capitals (NEGATIVE, POSITIVE).
    upper = [name.upper() for name in names]
    encoder_config = model.encoder.config.to_dict()  # type: ignore[union-attr, operator]
    for key in ("_name_or_path", "architectures", "transformers_version", "dtype", "auto_map"):
        encoder_config.pop(key, None)
    for key in ("id2label", "label2id", "problem_type"):  # the classifier's, not the encoder's
        encoder_config.pop(key, None)
    module = Path(export_folder.MODELING_NAME).stem
    return ImdbClassifierConfig(
        encoder=encoder_config,
        label_names=names,
        truncation=encoder.truncation_settings(),
        id2label=dict(enumerate(upper)),
        label2id={name: i for i, name in enumerate(upper)},
        problem_type="single_label_classification",
        pad_token_id=encoder.pad_id,
        source={
            "model": run.model,
            "run_id": run.run_id,
            "checkpoint": checkpoint.name,
            "best_epoch": run.ledger.best_epoch,
            "dataset": run.ledger.dataset,
            "data_fingerprint": run.ledger.data.data_fingerprint,
            "imdb_version": __version__,
        },
        auto_map={
            "AutoConfig": f"{module}.{ImdbClassifierConfig.__name__}",
            "AutoModelForSequenceClassification": f"{module}.{ImdbClassifier.__name__}",
        },
    )


# --------------------------------------------------------------------------- hf


def _write_hf(model: EncoderForClassification, config: ImdbClassifierConfig, folder: Path) -> None:
    """The weights in the exported class, its config, and the model code itself: this
    package's model.py, which imports only torch and transformers."""
    with onnx_graphs.quiet():
        hf_model = ImdbClassifier(config)
        hf_model.load_state_dict(model.state_dict(), strict=True)
        hf_model.save_pretrained(folder)
    shutil.copyfile(imdb_model.__file__, folder / export_folder.MODELING_NAME)


# --------------------------------------------------------------------------- onnx


def _write_onnx(
    model: EncoderForClassification,
    config: Any,
    encoder: Encoder,
    folder: Path,
    workspace: Workspace,
    result: ExportResult,
) -> None:
    """The graph asked for (the fused one unless it fails or differs from torch: then the
    plain one, with a warning), checked against torch; int8 on top of it when asked."""
    fp32 = folder / export_folder.ONNX_NAME
    reviews = _check_reviews(workspace, result.run)
    sample = tokenize(encoder, reviews[:3])
    checked = tokenize(encoder, reviews)
    torch_model = _predictor(torch_forward(model, torch.device("cpu"), "fp32"), config, encoder)
    expected = classify(torch_model, checked).probs
    result.checked_reviews = len(reviews)
    if result.graph == "optimized":
        try:
            info("exporting the fused ONNX graph (TorchScript exporter, onnxruntime optimizer)")
            eager, _ = checkpoints.load_classifier(result.run, "best", "eager")
            fusions = onnx_graphs.fused_graph(eager, sample.input_ids, sample.lengths, fp32)
            if not fusions.complete:
                warn(f"onnxruntime fused only {fusions.describe()} of this {fusions.model_type}")
            _check_against_torch(fp32, config, encoder, checked, expected, result)
            result.fusions = fusions
        except ImdbError as exc:
            result.graph_note = f"the fused graph was not kept: {exc.message}"
            warn(f"{result.graph_note}; writing the plain graph")
    if result.fusions is None:
        info("exporting to ONNX (torch.onnx.export)")
        onnx_graphs.plain_graph(model, sample.input_ids, sample.lengths, fp32)
        _check_against_torch(fp32, config, encoder, checked, expected, result)
    config.onnx_graph = result.written_graph
    config.onnx_fusions = result.fusions.to_dict() if result.fusions else None
    if result.quantization is None:
        config.to_json_file(folder / export_folder.CONFIG_NAME)
        _measure_accuracy(workspace, result, config, encoder, {"fp32": fp32})
        return
    int8 = folder / "model.int8.onnx"
    how = QUANTIZATIONS[result.quantization]
    if how.method == "dynamic":
        info(f"quantizing to int8: {how.describe()}")
        onnx_graphs.quantize_dynamic(fp32, int8, how)
    else:
        batches = _calibration_batches(workspace, result.run, encoder)
        how = replace(how, calibration_reviews=batches.reviews)
        info(f"quantizing to int8: {how.describe()}")
        onnx_graphs.quantize_static(fp32, int8, batches, how)
    result.int8 = how
    config.quantization = "int8"
    config.onnx_quantization = how.to_dict()
    config.to_json_file(folder / export_folder.CONFIG_NAME)
    _measure_accuracy(workspace, result, config, encoder, {"fp32": fp32, "int8": int8})
    int8.replace(fp32)  # the folder holds one model.onnx: the int8 one


def _check_against_torch(
    path: Path,
    config: Any,
    encoder: Encoder,
    checked: TokenizedSplit,
    expected: np.ndarray,
    result: ExportResult,
) -> None:
    info(f"checking onnxruntime against torch on {len(checked)} test reviews")
    session = export_folder.onnx_session(path)
    got = classify(_predictor(onnx_forward(session), config, encoder), checked).probs
    difference = float(np.abs(got - expected).max())
    if not difference <= ONNX_TOLERANCE:
        raise ImdbError(
            f"the ONNX model's probabilities differ from torch's by {difference:.2e} "
            f"(more than {ONNX_TOLERANCE:g}); nothing was written"
        )
    result.onnx_difference = difference


@dataclass
class _Calibration:
    """Batches of validation reviews as the graph's inputs, for static quantization."""

    split: TokenizedSplit
    batch_size: int = 32

    @property
    def reviews(self) -> int:
        return len(self.split)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        _, ordered = shortest_first(self.split, self.batch_size, torch.device("cpu"))
        for batch in ordered:
            yield onnx_inputs(batch)


def _calibration_batches(workspace: Workspace, run: Run, encoder: Encoder) -> _Calibration:
    """CALIBRATION_REVIEWS validation reviews of the run (never its test reviews, on which
    the card reports accuracy), spread over the split."""
    try:
        split = load_split(cache_of_run(workspace, run.ledger), "val")
    except ImdbError as exc:
        raise ImdbError(f"static int8 needs the run's validation reviews: {exc.message}") from exc
    if len(split) == 0:
        raise ImdbError("static int8 needs the run's validation reviews: the split is empty")
    count = min(CALIBRATION_REVIEWS, len(split))
    picked = np.linspace(0, len(split) - 1, count).round().astype(np.int64)
    return _Calibration(split.subset(np.unique(picked)))


def _predictor(forward: Any, config: Any, encoder: Encoder) -> Predictor:
    """A Predictor for the export's own checks (onnxruntime vs torch, accuracy)."""
    return Predictor(
        description="export check",
        label_names=list(config.label_names),
        encoder=encoder,
        forward=forward,
        device=torch.device("cpu"),
        batch_size=export_folder.DEFAULT_BATCH_SIZE,
        hidden_size=0,
    )


def _check_reviews(workspace: Workspace, run: Run) -> list[str]:
    """Test reviews of the run (the longest and the shortest, so that the check covers a
    cut review and padding), or made-up sentences when its data cache is gone."""
    try:
        cache = cache_of_run(workspace, run.ledger)
        _, texts, _ = load_texts(cache, "test")
    except ImdbError:
        texts = []
    if len(texts) < 3:
        return [f"Review {i}: " + "a fine film, then a dull one. " * (i * 7 + 1) for i in range(8)]
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    half = CHECK_REVIEWS // 2
    # The shortest and the longest; in a small split they overlap, and each counts once.
    chosen = dict.fromkeys([*order[:half], *order[-half:]])
    return [texts[i] for i in chosen]


def _measure_accuracy(
    workspace: Workspace,
    result: ExportResult,
    config: Any,
    encoder: Encoder,
    models: dict[str, Path],
) -> None:
    """Test-split accuracy of the written ONNX graph (fp32, and int8 when made), for the card."""
    try:
        cache = cache_of_run(workspace, result.run.ledger)
        split = load_split(cache, "test")
    except ImdbError as exc:
        result.accuracy_note = f"not measured: {exc.message}"
        warn(f"ONNX test accuracy {result.accuracy_note}")
        return
    labels = np.asarray(split.labels)
    result.test_reviews = len(labels)
    for name, path in models.items():
        predictor = _predictor(onnx_forward(export_folder.onnx_session(path)), config, encoder)
        with progress() as bar:
            task = bar.add_task(f"test accuracy, ONNX {name}", total=len(labels))
            advance = functools.partial(bar.advance, task)
            probs = classify(predictor, split, on_batch=advance).probs
        result.accuracy[name] = float((probs.argmax(axis=1) == labels).mean())
