"""`imdb export`: a run's best checkpoint as a Hugging Face folder, or as ONNX (fp32 or int8).

    run ──export (hf)──▶ config.json (auto_map), model.safetensors, modeling_imdb.py,
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
import platform
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from transformers.tokenization_utils_base import VERY_LARGE_INTEGER

from imdb_cli import __version__, checkpoints, exported, registry
from imdb_cli.config import TrainConfig
from imdb_cli.console import info, progress, warn
from imdb_cli.data.encoding import Encoder
from imdb_cli.data.locate import cache_of_run
from imdb_cli.data.tokenized import TokenizedSplit, load_split, load_texts
from imdb_cli.errors import ImdbError
from imdb_cli.files import atomic_dir
from imdb_cli.ledger import LEDGER_NAME, Ledger
from imdb_cli.model import EncoderForClassification
from imdb_cli.predict import Predictor, classify, onnx_forward, tokenize, torch_forward
from imdb_cli.runs import Run, resolve_run
from imdb_cli.stats import wilson_interval
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
        exported.require_onnx("--format onnx")


def check_out(out: Path, force: bool) -> None:
    """--out must be a new or empty folder, unless --force."""
    if out.exists() and not out.is_dir():
        raise ImdbError(f"--out {out}: is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ImdbError(f"--out {out}: exists and is not empty (--force replaces it)")


def exportable_run(workspace: Workspace, target: str, dataset: str | None = None) -> Run:
    """The run to export: completed, with a tested best checkpoint."""
    run = resolve_run(workspace, target, dataset)
    ledger = run.ledger
    if ledger.status != "completed" or ledger.best_epoch is None or ledger.test is None:
        raise ImdbError(
            f"run {run.describe()} has no completed best checkpoint "
            f"(finish it with `imdb train {run.model} --resume {run.path}`)"
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
    check_out(out, force)
    model, path = checkpoints.load_classifier(run, "best")
    tokenizer = checkpoints.load_run_tokenizer(run)
    config = TrainConfig.from_dict(run.ledger.config, f"{run.path / LEDGER_NAME}: config")
    encoder = Encoder(tokenizer, config.max_length, config.truncation)
    result = ExportResult(out, fmt, quantize, run, path)
    hf_config = classifier_config(run, model, encoder, path, quantize)
    # The HF model cuts long reviews itself (as trained): its tokenizer must not cut them
    # first, even when asked to truncate without a max_length. The ONNX graph does not cut:
    # there `truncation=True` should cut to the run's length.
    tokenizer.model_max_length = VERY_LARGE_INTEGER if fmt == "hf" else encoder.max_length
    with atomic_dir(out) as folder:
        tokenizer.save_pretrained(folder)
        if fmt == "hf":
            _write_hf(model, hf_config, folder)
        else:
            _write_onnx(model, hf_config, encoder, folder, workspace, result)
        (folder / exported.CARD_NAME).write_text(model_card(result, hf_config), encoding="utf-8")
    return result


# --------------------------------------------------------------------------- config


def classifier_config(
    run: Run,
    model: EncoderForClassification,
    encoder: Encoder,
    checkpoint: Path,
    quantize: str | None,
) -> Any:
    """The export's config.json: modeling_imdb.ImdbClassifierConfig."""
    from imdb_cli.modeling_imdb import ImdbClassifierConfig

    names = run.ledger.label_names
    # Hugging Face sentiment models name their classes in capitals (NEGATIVE, POSITIVE).
    upper = [name.upper() for name in names]
    encoder_config = model.encoder.config.to_dict()  # type: ignore[union-attr, operator]
    for key in ("_name_or_path", "architectures", "transformers_version", "dtype", "auto_map"):
        encoder_config.pop(key, None)
    for key in ("id2label", "label2id", "problem_type"):  # the classifier's, not the encoder's
        encoder_config.pop(key, None)
    return ImdbClassifierConfig(
        encoder=encoder_config,
        label_names=names,
        truncation={
            "max_length": encoder.max_length,
            "strategy": encoder.truncation,
            "prefix_tokens": len(encoder.prefix),
            "suffix_tokens": len(encoder.suffix),
            "head_tokens": head_tokens(encoder),
        },
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
            "data_fingerprint": run.ledger.data.get("data_fingerprint"),
            "imdb_version": __version__,
        },
        quantization=quantize,
    )


def head_tokens(encoder: Encoder) -> int:
    """Text tokens a cut review keeps from its start (Encoder's rule)."""
    if encoder.truncation == "head":
        return encoder.content
    if encoder.truncation == "tail":
        return 0
    return min(encoder.head, encoder.content)


# --------------------------------------------------------------------------- hf


def _write_hf(model: EncoderForClassification, config: Any, folder: Path) -> None:
    from imdb_cli.modeling_imdb import ImdbClassifier

    with _quiet():
        hf_model = ImdbClassifier(config)
        hf_model.load_state_dict(model.state_dict(), strict=True)
        hf_model.save_pretrained(folder)


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
    fp32 = folder / exported.ONNX_NAME
    reviews = _check_reviews(workspace, result.run)
    sample = tokenize(encoder, reviews[:3])
    info("exporting to ONNX (torch.onnx.export)")
    export_onnx(model, sample, fp32)
    torch_model = _predictor(torch_forward(model, torch.device("cpu"), "fp32"), config, encoder)
    checked = tokenize(encoder, reviews)
    expected = classify(torch_model, checked).probs
    session = exported.onnx_session(fp32)
    got = classify(_predictor(onnx_forward(session), config, encoder), checked).probs
    result.onnx_difference = float(np.abs(got - expected).max())
    if not result.onnx_difference <= ONNX_TOLERANCE:
        raise ImdbError(
            f"the ONNX model's probabilities differ from torch's by {result.onnx_difference:.2e} "
            f"(more than {ONNX_TOLERANCE:g}); nothing was written"
        )
    config.to_json_file(folder / exported.CONFIG_NAME)
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
                input_names=list(exported.ONNX_INPUTS),
                output_names=list(exported.ONNX_OUTPUTS),
                dynamic_shapes={name: dynamic for name in exported.ONNX_INPUTS},
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
    Per-channel scales: with one scale per tensor, a MiniLM lost about a point of accuracy
    on this x86 CPU (AVX2, no VNNI), per channel none (measured on 400 IMDB test reviews).
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
        batch_size=exported.DEFAULT_BATCH_SIZE,
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
    by_length = sorted(texts, key=len)
    half = CHECK_REVIEWS // 2
    return by_length[:half] + by_length[-half:]


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
        predictor = _predictor(onnx_forward(exported.onnx_session(path)), config, encoder)
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


# --------------------------------------------------------------------------- model card


def model_card(result: ExportResult, config: Any) -> str:
    ledger = result.run.ledger
    return "\n".join(
        [
            _card_header(result, config, ledger),
            _card_model(result, config, ledger),
            _card_data(ledger),
            _card_recipe(ledger),
            _card_results(result, ledger),
            _card_usage(result, config),
            _card_limits(result, config),
            _card_versions(result, ledger),
        ]
    )


def _card_header(result: ExportResult, config: Any, ledger: Ledger) -> str:
    kind = "Hugging Face folder" if result.format == "hf" else "ONNX model (fp32)"
    if result.quantization:
        kind = f"ONNX model ({result.quantization}, dynamic quantization)"
    names = ", ".join(config.label_names)
    return (
        "---\n"
        f"library_name: {'transformers' if result.format == 'hf' else 'onnx'}\n"
        "pipeline_tag: text-classification\n"
        "tags: [imdb-cli, text-classification]\n"
        "---\n\n"
        f"# {ledger.model}: a {len(config.label_names)}-class review classifier ({names})\n\n"
        f"The {kind} written by `imdb export` (imdb-cli {__version__}) on "
        f"{datetime.now(timezone.utc).strftime('%Y-%m-%d')} from run `{ledger.model}/"
        f"{ledger.run_id}`, checkpoint `{result.checkpoint.name}` (the best validation "
        f"epoch, {ledger.best_epoch}).\n"
    )


def _base_encoder(model_key: str) -> str:
    try:
        spec = registry.load_spec(model_key)
    except ImdbError:
        return "unknown (its model entry is no longer registered)"
    if spec.pretrained is None:
        return "random initialisation (no pretrained weights)"
    return f"`{spec.pretrained}`"


def _card_model(result: ExportResult, config: Any, ledger: Ledger) -> str:
    encoder = config.encoder
    cut = config.truncation
    strategy = cut["strategy"]
    kept = {
        "head": "the first tokens",
        "tail": "the last tokens",
        "head+tail": f"the first {cut['head_tokens']} text tokens and the last "
        f"{cut['max_length'] - cut['prefix_tokens'] - cut['suffix_tokens'] - cut['head_tokens']}",
    }[strategy]
    labels = "\n".join(
        f"| {i} | `{config.id2label[i]}` | `{name}` |" for i, name in enumerate(config.label_names)
    )
    return (
        "## Model\n\n"
        f"- Base encoder: {_base_encoder(ledger.model)} ({encoder.get('model_type')}, "
        f"{encoder.get('num_hidden_layers')} layers, hidden size {encoder.get('hidden_size')}); "
        f"{ledger.parameters:,} parameters with the head.\n"
        "- Pooling: the mean of the encoder's last hidden states over the review's real tokens "
        "(masked mean pooling: padding never counts). Not the [CLS] token and not BERT's "
        "pooler, which the transformers classification heads use.\n"
        f"- Head: one linear layer, {encoder.get('hidden_size')} -> "
        f"{len(config.label_names)} classes; probabilities by softmax.\n"
        f"- Input: at most {cut['max_length']} tokens, special tokens included. A longer "
        f"review is cut as the run was trained ({strategy}): it keeps {kept}.\n\n"
        "Classes (`id2label` follows the Hugging Face convention of upper-case sentiment "
        "labels; `label_names` in config.json keeps the run's own names, which `imdb predict` "
        "prints):\n\n"
        "| id | id2label | run's name |\n| --- | --- | --- |\n"
        f"{labels}\n"
    )


def _card_data(ledger: Ledger) -> str:
    sizes = ledger.data.get("sizes", {})
    listed = ", ".join(f"{split.replace('_', ' ')} {count:,}" for split, count in sizes.items())
    return (
        "## Data\n\n"
        f"- Data set: {ledger.dataset}\n"
        f"- Data set fingerprint: `{ledger.data.get('data_fingerprint')}` (`imdb prepare`'s "
        "name for the reviews, the split and its options)\n"
        f"- Split seed: {ledger.data.get('split_seed')}; reviews per split: {listed}\n"
    )


def _card_recipe(ledger: Ledger) -> str:
    config = ledger.config
    shown = (
        "epochs",
        "batch_size",
        "lr",
        "optimizer",
        "scheduler",
        "warmup_ratio",
        "weight_decay",
        "max_length",
        "truncation",
        "precision",
        "seed",
        "limit_train",
    )
    rows = "\n".join(f"| {key} | {config.get(key)} |" for key in shown if key in config)
    environment = ledger.environment
    return (
        "## Recipe\n\n"
        f"Trained by `imdb train` on {environment.get('device', '?')} in "
        f"{environment.get('precision', '?')}:\n\n"
        f"| setting | value |\n| --- | --- |\n{rows}\n"
    )


def _card_results(result: ExportResult, ledger: Ledger) -> str:
    test = ledger.test
    assert test is not None  # exportable_run checked it
    correct = round(test.acc * test.samples)
    low, high = wilson_interval(correct, test.samples)
    best = ledger.epoch(ledger.best_epoch) if ledger.best_epoch is not None else None
    lines = [
        "## Results\n",
        f"- Test accuracy: {test.acc:.4f} (95% Wilson interval {low:.4f}-{high:.4f}) on "
        f"{test.samples:,} test reviews, best epoch {ledger.best_epoch}"
        + (f" (validation accuracy {best.val_acc:.4f})" if best is not None else "")
        + ".",
    ]
    if result.onnx_difference is not None:
        lines.append(
            f"- ONNX fp32 vs torch: largest difference of a class probability "
            f"{result.onnx_difference:.1e} on {CHECK_REVIEWS} test reviews."
        )
    if result.quantization:
        if result.accuracy:
            lines += [
                "",
                f"Measured at export on the run's {result.test_reviews:,} test reviews "
                "(onnxruntime, CPU):",
                "",
                "| model | test accuracy |",
                "| --- | --- |",
                *(f"| ONNX {name} | {acc:.4f} |" for name, acc in result.accuracy.items()),
            ]
            change = (result.accuracy["int8"] - result.accuracy["fp32"]) * 100
            lines.append(f"\nint8 minus fp32: {change:+.2f} accuracy points.")
        else:
            lines.append(f"- int8 accuracy {result.accuracy_note}.")
    return "\n".join(lines) + "\n"


def _card_usage(result: ExportResult, config: Any) -> str:
    name = result.out.name
    cut = config.truncation
    predict = (
        f'```bash\nimdb predict {name} --text "A slow start, but a wonderful last hour."\n'
        f"imdb predict {name} --file reviews.csv --column review -o scored.csv\n```\n"
    )
    if result.format == "hf":
        return (
            "## How to use\n\n"
            "With transformers alone (no `imdb` needed; the model code is `modeling_imdb.py` "
            "in this folder, hence `trust_remote_code=True`):\n\n"
            "```python\nfrom transformers import pipeline\n\n"
            f'classify = pipeline("text-classification", model="{name}", '
            "trust_remote_code=True)\n"
            'classify(["A slow start, but a wonderful last hour."], top_k=None, batch_size=64)'
            "\n```\n\n"
            "```python\nimport torch\n"
            "from transformers import AutoModelForSequenceClassification, AutoTokenizer\n\n"
            f'model = AutoModelForSequenceClassification.from_pretrained("{name}", '
            "trust_remote_code=True)\n"
            f'tokenizer = AutoTokenizer.from_pretrained("{name}", trust_remote_code=True)\n'
            'batch = tokenizer(["Two hours I will never get back."], padding=True, '
            'return_tensors="pt")\n'
            "with torch.no_grad():\n"
            "    probs = model(**batch).logits.softmax(-1)\n```\n\n"
            "Give the model whole reviews, right-padded: it cuts each review longer than "
            f"{cut['max_length']} tokens itself, the way it was trained ({cut['strategy']}). "
            "The tokenizer has no maximum length for that reason, so `truncation=True` "
            "without a `max_length` changes nothing.\n\n"
            f"With imdb (reads config.json and the weights; runs no code from the folder):\n\n"
            f"{predict}"
        )
    head_call = (
        f"tokenizer(texts, truncation=True, max_length={cut['max_length']}, padding=True, "
        'return_tensors="np")'
    )
    return (
        "## How to use\n\n"
        "With onnxruntime (inputs `input_ids` and `attention_mask`, int64, any batch size and "
        "length; outputs `logits` and `pooled`):\n\n"
        "```python\nimport onnxruntime\nfrom transformers import AutoTokenizer\n\n"
        f'session = onnxruntime.InferenceSession("{name}/model.onnx")\n'
        f'tokenizer = AutoTokenizer.from_pretrained("{name}")\n'
        'texts = ["A slow start, but a wonderful last hour."]\n'
        + (
            f"batch = {head_call}\n"
            if cut["strategy"] == "head"
            else "batch = ...  # token ids cut as described below\n"
        )
        + 'logits, pooled = session.run(None, {"input_ids": batch["input_ids"], '
        '"attention_mask": batch["attention_mask"]})\n```\n\n'
        f"With imdb (encodes and cuts reviews exactly as the run was trained):\n\n{predict}"
    )


def _card_limits(result: ExportResult, config: Any) -> str:
    cut = config.truncation
    lines = ["## What it cannot reproduce\n"]
    if result.format == "hf":
        lines += [
            "- Truncation in the tokenizer with a `max_length`: it would cut the review "
            "before the model does"
            + (
                f", keeping its first tokens, not the {cut['strategy']} this model was trained on."
                if cut["strategy"] != "head"
                else f"; with `max_length={cut['max_length']}` the result is the same, with "
                "any other it is not."
            ),
            "- Left padding: the model expects padding on the right (the tokenizer's setting).",
            "- Text pairs: the model was trained on single reviews.",
        ]
    else:
        lines += [
            "- The graph takes token ids already cut to the model's length: it does not cut "
            f"longer reviews. {cut['strategy'].capitalize()} truncation to "
            f"{cut['max_length']} tokens is what the model was trained on"
            + (
                " (the tokenizer call above does exactly that)."
                if cut["strategy"] == "head"
                else f": keep the special tokens, the first {cut['head_tokens']} text tokens and "
                "the last of the rest; `imdb predict` does it for you."
            ),
        ]
        if result.quantization:
            lines.append(
                "- int8 probabilities are close to, not equal to, the fp32 model's; see Results."
            )
    return "\n".join(lines) + "\n"


def _card_versions(result: ExportResult, ledger: Ledger) -> str:
    environment = ledger.environment
    exported_with = [
        f"imdb-cli {__version__}",
        f"torch {torch.__version__}",
        f"transformers {transformers.__version__}",
    ]
    if result.format == "onnx":
        import onnx
        import onnxruntime

        exported_with += [f"onnx {onnx.__version__}", f"onnxruntime {onnxruntime.__version__}"]
    return (
        "## Versions\n\n"
        f"- Trained with: python {environment.get('python', '?')}, torch "
        f"{environment.get('torch', '?')}, transformers {environment.get('transformers', '?')}\n"
        f"- Exported with: {', '.join(exported_with)} (python {platform.python_version()})\n"
    )
