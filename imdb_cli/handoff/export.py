"""`imdb export`: a run's best checkpoint as a Hugging Face folder, or as ONNX (fp32 or int8).

    run ──export (hf)──▶ config.json (auto_map), model.safetensors, modeling_imdb.py (= model.py),
                         tokenizer files, README.md (the model card)
    run ──export (onnx)─▶ model.onnx, config.json, tokenizer files, README.md

The library does the work: `save_pretrained` writes the HF folder (weights, config with
auto_map, and the modeling file, copied because its classes are registered for the auto
classes); `torch.onnx.export` (the dynamo exporter, dynamic batch and sequence length)
writes the ONNX graph; `onnxruntime.quantization.quantize_dynamic` makes the int8 model.
Every export is checked before it is kept: the ONNX model against torch on real reviews,
and an int8 model's accuracy on the run's test split next to fp32's. The folder is filled
under a temporary name and renamed when complete (files.atomic_dir).
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
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
from imdb_cli.handoff.model_card import model_card
from imdb_cli.handoff.predict import Predictor, classify, onnx_forward, tokenize, torch_forward
from imdb_cli.model import EncoderForClassification, ImdbClassifier, ImdbClassifierConfig
from imdb_cli.runs import checkpoints
from imdb_cli.runs.caches import cache_of_run
from imdb_cli.runs.run import Run
from imdb_cli.runs.select import select_run
from imdb_cli.workspace import Workspace

FORMATS = ("hf", "onnx")
QUANTIZATIONS = ("int8",)
ONNX_TOLERANCE = 1e-4  # largest difference of a class probability, onnxruntime vs torch
CHECK_REVIEWS = 64  # test reviews the ONNX model is checked on against torch
ONNX_PROTOBUF_LIMIT = 1_800_000_000  # bytes; larger weights go to a side file (2 GB limit)


@dataclass
class ExportResult:
    out: Path
    format: str
    quantization: str | None
    run: Run
    checkpoint: Path
    # ONNX: largest |probability difference| vs torch on CHECK_REVIEWS test reviews.
    onnx_difference: float | None = None
    checked_reviews: int = 0
    # ONNX: test-split accuracy of the exported model, by precision ("fp32", "int8").
    accuracy: dict[str, float] = field(default_factory=dict)
    test_reviews: int = 0
    accuracy_note: str | None = None  # why accuracy was not measured


def check_options(fmt: str, quantize: str | None) -> None:
    if fmt not in FORMATS:
        raise ImdbError(f"--format must be one of {', '.join(FORMATS)} (got {fmt!r})")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ImdbError(f"--quantize must be {' or '.join(QUANTIZATIONS)} (got {quantize!r})")
    if quantize is not None and fmt != "onnx":
        raise ImdbError(f"--quantize {quantize} needs --format onnx")
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
    force: bool = False,
    dataset: str | None = None,
) -> ExportResult:
    """A model key (its newest completed run, on `dataset` when given), MODEL/RUN-ID or a run
    folder, exported to the folder `out`."""
    check_options(fmt, quantize)
    run = exportable_run(workspace, target, dataset)
    state = check_out(out, force, workspace, run)
    info(f"loading the best checkpoint of {run.model}/{run.run_id}")
    model, path = checkpoints.load_classifier(run, "best")
    encoder = run.encoder()
    tokenizer = encoder.tokenizer
    result = ExportResult(out, fmt, quantize, run, path)
    hf_config = classifier_config(run, model, encoder, path, quantize)
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
    quantize: str | None,
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
        quantization=quantize,
        auto_map={
            "AutoConfig": f"{module}.{ImdbClassifierConfig.__name__}",
            "AutoModelForSequenceClassification": f"{module}.{ImdbClassifier.__name__}",
        },
    )


# --------------------------------------------------------------------------- hf


def _write_hf(model: EncoderForClassification, config: ImdbClassifierConfig, folder: Path) -> None:
    """The weights in the exported class, its config, and the model code itself: this
    package's model.py, which imports only torch and transformers."""
    with _quiet():
        hf_model = ImdbClassifier(config)
        hf_model.load_state_dict(model.state_dict(), strict=True)
        hf_model.save_pretrained(folder)
    shutil.copyfile(imdb_model.__file__, folder / export_folder.MODELING_NAME)


# --------------------------------------------------------------------------- onnx


class _OnnxGraph(torch.nn.Module):
    """The classifier with the graph's inputs and outputs: token ids and mask in,
    logits and pooled vectors out (the mask always given; padding or not)."""

    def __init__(self, model: EncoderForClassification) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(input_ids, attention_mask)
        return out.logits, out.pooled


def _write_onnx(
    model: EncoderForClassification,
    config: Any,
    encoder: Encoder,
    folder: Path,
    workspace: Workspace,
    result: ExportResult,
) -> None:
    fp32 = folder / export_folder.ONNX_NAME
    reviews = _check_reviews(workspace, result.run)
    sample = tokenize(encoder, reviews[:3])
    info("exporting to ONNX (torch.onnx.export)")
    export_onnx(model, sample, fp32)
    torch_model = _predictor(torch_forward(model, torch.device("cpu"), "fp32"), config, encoder)
    checked = tokenize(encoder, reviews)
    expected = classify(torch_model, checked).probs
    info(f"checking onnxruntime against torch on {len(reviews)} test reviews")
    session = export_folder.onnx_session(fp32)
    got = classify(_predictor(onnx_forward(session), config, encoder), checked).probs
    result.onnx_difference = float(np.abs(got - expected).max())
    result.checked_reviews = len(reviews)
    if not result.onnx_difference <= ONNX_TOLERANCE:
        raise ImdbError(
            f"the ONNX model's probabilities differ from torch's by {result.onnx_difference:.2e} "
            f"(more than {ONNX_TOLERANCE:g}); nothing was written"
        )
    config.to_json_file(folder / export_folder.CONFIG_NAME)
    if result.quantization is None:
        return
    int8 = folder / "model.int8.onnx"
    info("quantizing to int8 (onnxruntime quantize_dynamic)")
    quantize_int8(fp32, int8)
    _measure_accuracy(workspace, result, config, encoder, fp32, int8)
    int8.replace(fp32)  # the folder holds one model.onnx: the int8 one


def export_onnx(model: EncoderForClassification, sample: TokenizedSplit, path: Path) -> None:
    """torch.onnx.export (dynamo) with dynamic batch and sequence length.

    The sample batch has padding and more than one review of more than one token: the
    exporter specializes dimensions of size 0 or 1, and a batch without padding would
    trace the classifier's no-mask path.
    """
    model = model.cpu().eval()
    width = int(sample.lengths.max())
    ids = torch.from_numpy(np.asarray(sample.input_ids[:, :width], dtype=np.int64))
    mask = (torch.arange(width)[None, :] < torch.from_numpy(sample.lengths)[:, None]).long()
    dynamic = {0: "batch", 1: "sequence"}
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    try:
        with _quiet():
            torch.onnx.export(
                _OnnxGraph(model),
                (ids, mask),
                str(path),
                input_names=list(export_folder.ONNX_INPUTS),
                output_names=list(export_folder.ONNX_OUTPUTS),
                dynamic_shapes={name: dynamic for name in export_folder.ONNX_INPUTS},
                dynamo=True,
                external_data=weights > ONNX_PROTOBUF_LIMIT,
                verbose=False,
            )
    except ImdbError:
        raise
    except Exception as exc:  # the exporter raises many types; say which step failed
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ImdbError(f"torch.onnx.export failed: {first}") from exc


def quantize_int8(fp32: Path, int8: Path) -> None:
    """Dynamic int8 quantization of the weights of the matrix products (onnxruntime).

    First onnxruntime's own pre-processing (ONNX shape inference and graph optimization), as
    its quantization documentation asks; without its symbolic shape inference, which cannot
    complete on graphs from the dynamo exporter ("Incomplete symbolic shape inference").
    Per-channel scales: with one scale per tensor, a MiniLM lost about a point of accuracy,
    per channel none (measured on 400 IMDB test reviews).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = int8.with_name("model.prepared.onnx")
    with _quiet():
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        quantize_dynamic(str(prepared), str(int8), weight_type=QuantType.QInt8, per_channel=True)
    prepared.unlink()


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
    fp32: Path,
    int8: Path,
) -> None:
    """Test-split accuracy of the fp32 and int8 ONNX models, for the model card."""
    try:
        cache = cache_of_run(workspace, result.run.ledger)
        split = load_split(cache, "test")
    except ImdbError as exc:
        result.accuracy_note = f"not measured: {exc.message}"
        warn(f"int8 accuracy {result.accuracy_note}")
        return
    labels = np.asarray(split.labels)
    result.test_reviews = len(labels)
    for name, path in (("fp32", fp32), ("int8", int8)):
        predictor = _predictor(onnx_forward(export_folder.onnx_session(path)), config, encoder)
        with progress() as bar:
            task = bar.add_task(f"test accuracy, ONNX {name}", total=len(labels))
            advance = functools.partial(bar.advance, task)
            probs = classify(predictor, split, on_batch=advance).probs
        result.accuracy[name] = float((probs.argmax(axis=1) == labels).mean())


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporters print progress bars, steps and warnings of their own; imdb reports
    its own progress instead (errors still raise)."""
    hf_logging = transformers.utils.logging
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxruntime", "root")]
    levels = [logger.level for logger in loggers]
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
