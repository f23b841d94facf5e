"""Scoring reviews with a trained model: a run, or a folder written by `imdb export`.

    target ──load_predictor──▶ Predictor: the run's tokenizer and truncation, its class
                               names, and a forward pass (torch, or onnxruntime for ONNX)
    reviews ──predict_reviews──▶ chunk by chunk, in input order: class probabilities
                                 (and the pooled vectors)

A chunk of reviews is encoded exactly as `imdb prepare` encoded the run's data (the same
`Encoder`: tokenizer, max length, head/tail/head+tail truncation) into a tokenized split,
which `classify` scores in evaluation's own batches (`training.inference.shortest_first`:
shortest reviews first, trimmed to their longest review, no mask when there is no padding;
the registry's input filtering inside the model). So the probabilities of a test review
equal the ones its run's ledger holds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import TextColumn

from imdb_cli.console import info, progress
from imdb_cli.data.encoding import Encoder, Tokenization
from imdb_cli.data.tokenized import TokenizedSplit
from imdb_cli.device import autocast, choose_device, choose_precision
from imdb_cli.errors import ImdbError
from imdb_cli.handoff import export_folder
from imdb_cli.handoff.review_files import ReviewSource
from imdb_cli.model import EncoderForClassification
from imdb_cli.runs import checkpoints
from imdb_cli.runs.ledger import LEDGER_NAME
from imdb_cli.runs.run import is_run_dir
from imdb_cli.runs.select import Selected, select_run
from imdb_cli.training.batches import Batch
from imdb_cli.training.inference import in_split_order, shortest_first
from imdb_cli.workspace import Workspace

# One batch of the cache's kind in, (logits, pooled vectors) out: float32 tensors on the host.
Forward = Callable[[Batch], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class Predictor:
    """A model ready to score reviews, and how its inputs must be encoded."""

    description: str  # what was loaded, for messages
    label_names: list[str]  # by class id
    encoder: Encoder  # tokenizer + max length + truncation of the run
    forward: Forward
    device: torch.device
    batch_size: int
    hidden_size: int  # length of a pooled vector
    packs: bool = False  # the torch model packs padded batches (model.Packing)


@dataclass
class Scores:
    probs: np.ndarray  # [reviews, classes] float32, in the split's order
    pooled: np.ndarray | None  # [reviews, hidden] float32 when asked for


@dataclass
class ScoredChunk:
    keys: list[Any]
    texts: list[str]
    probs: np.ndarray
    pooled: np.ndarray | None


# --------------------------------------------------------------------------- loading


def load_predictor(
    workspace: Workspace,
    target: str,
    *,
    checkpoint: str = "best",
    device: str = "auto",
    batch_size: int | None = None,
    dataset: str | None = None,
) -> Predictor:
    """A model key (its newest completed run, on `dataset` when given), MODEL/RUN-ID, a run
    folder, or a folder written by `imdb export`."""
    if batch_size is not None and batch_size < 1:
        raise ImdbError(f"--batch-size must be at least 1 (got {batch_size})")
    folder = Path(target)
    if folder.is_dir() and not is_run_dir(folder):
        if not export_folder.is_export_dir(folder):
            raise ImdbError(
                f"{folder}: neither a run folder (no {LEDGER_NAME}) nor a folder written by "
                f"`imdb export` (no {export_folder.CONFIG_NAME} of an imdb model)"
            )
        if checkpoint != "best":
            raise ImdbError(f"--checkpoint {checkpoint}: an exported folder holds one model")
        return _from_export(folder, device, batch_size)
    selected = select_run(workspace, target, dataset)
    info(f"{target}: {selected.describe()}")
    return _from_run(selected, checkpoint, device, batch_size)


def _from_run(
    selected: Selected, checkpoint: str, device: str, batch_size: int | None
) -> Predictor:
    run = selected.run
    config = run.ledger.config
    chosen = choose_device(device)
    precision = choose_precision(config.precision, chosen)
    model, path = checkpoints.load_classifier(run, checkpoint)
    return Predictor(
        description=f"{selected.describe()}, {path.name}",
        label_names=_checked_labels(run.ledger.label_names, model, str(run.path)),
        encoder=run.encoder(),
        forward=torch_forward(model.to(chosen), chosen, precision),
        device=chosen,
        batch_size=batch_size or config.eval_batch_size,
        hidden_size=int(model.head.in_features),
        packs=model.packs,
    )


def _from_export(folder: Path, device: str, batch_size: int | None) -> Predictor:
    export = export_folder.read_export(folder)
    tokenizer = export_folder.load_tokenizer(folder)
    encoder = Encoder(tokenizer, Tokenization(export.max_length, export.truncation))
    size = batch_size or export_folder.DEFAULT_BATCH_SIZE
    if export.is_onnx:
        session = export_folder.onnx_session(folder / export_folder.ONNX_NAME, device)
        outputs = export_folder.onnx_outputs(session)
        export_folder.check_classes(folder, export, outputs, export_folder.ONNX_NAME)
        return Predictor(
            description=f"{folder} (ONNX, {export.onnx_graph} graph, "
            f"{export.quantization or 'fp32'})",
            label_names=export.label_names,
            encoder=encoder,
            forward=onnx_forward(session),
            device=torch.device("cpu"),
            batch_size=size,
            hidden_size=int(session.get_outputs()[1].shape[-1]),
        )
    chosen = choose_device(device)
    model = export_folder.load_model(folder, export)
    return Predictor(
        description=str(folder),
        label_names=_checked_labels(export.label_names, model, str(folder)),
        encoder=encoder,
        forward=torch_forward(model.to(chosen), chosen, "fp32"),
        device=chosen,
        batch_size=size,
        hidden_size=int(model.head.in_features),
        packs=model.packs,
    )


def _checked_labels(names: list[str], model: EncoderForClassification, where: str) -> list[str]:
    classes = int(model.head.out_features)
    if len(names) != classes:
        raise ImdbError(f"{where}: {len(names)} class names for a model of {classes} classes")
    return names


def torch_forward(model: EncoderForClassification, device: torch.device, precision: str) -> Forward:
    model.eval()

    def forward(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.inference_mode(), autocast(device, precision):
            out = model(batch.input_ids, batch.attention_mask, packing=batch.packing)
        return out.logits.float().cpu(), out.pooled.float().cpu()

    return forward


def onnx_inputs(batch: Batch) -> dict[str, np.ndarray]:
    """A batch as the inputs of `imdb export --format onnx`'s graph, which always takes a
    mask: a batch without padding gets one of ones."""
    ids = batch.input_ids.cpu().numpy()
    mask = batch.attention_mask
    return {
        export_folder.ONNX_INPUTS[0]: ids,
        export_folder.ONNX_INPUTS[1]: np.ones_like(ids) if mask is None else mask.cpu().numpy(),
    }


def onnx_forward(session: Any) -> Forward:
    """An onnxruntime session of `imdb export --format onnx` as a Forward."""

    def forward(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        logits, pooled = session.run(list(export_folder.ONNX_OUTPUTS), onnx_inputs(batch))
        return torch.from_numpy(logits), torch.from_numpy(pooled)

    return forward


# --------------------------------------------------------------------------- scoring


def classify(
    predictor: Predictor,
    split: TokenizedSplit,
    *,
    keep_pooled: bool = False,
    on_batch: Callable[[int], None] | None = None,
) -> Scores:
    """Class probabilities of every review of a tokenized split (and its pooled vector),
    batched as evaluation batches a split, returned in the split's order."""
    order, ordered = shortest_first(
        split, predictor.batch_size, predictor.device, pack=predictor.packs
    )
    probs: list[torch.Tensor] = []
    pooled: list[torch.Tensor] = []
    for batch in ordered:
        logits, vectors = predictor.forward(batch)
        probs.append(torch.softmax(logits, dim=-1))
        if keep_pooled:
            pooled.append(vectors)
        if on_batch is not None:
            on_batch(len(batch))
    classes = len(predictor.label_names)
    return Scores(
        probs=in_split_order(probs, order) if probs else np.zeros((0, classes), np.float32),
        pooled=in_split_order(pooled, order) if keep_pooled and pooled else None,
    )


def tokenize(encoder: Encoder, texts: list[str]) -> TokenizedSplit:
    """Reviews as a tokenized split, encoded the way `imdb prepare` encodes the cache.

    New reviews have no labels; the split's label column holds zeros that nothing reads.
    """
    input_ids, lengths = encoder.encode(texts)
    n = len(texts)
    return TokenizedSplit(
        review_ids=np.arange(n, dtype=np.int64),
        input_ids=input_ids,
        lengths=lengths,
        labels=np.zeros(n, dtype=np.int64),
        pad_token_id=encoder.pad_id,
    )


def predict_reviews(
    predictor: Predictor, source: ReviewSource, *, keep_pooled: bool = False
) -> Iterator[ScoredChunk]:
    """Score `source` chunk by chunk, in input order, with a progress bar (reviews/s)."""
    started = time.perf_counter()
    done = 0
    with progress(TextColumn("{task.fields[rate]}")) as bar:
        task = bar.add_task("predict", total=source.total, rate="")

        def advance(count: int) -> None:
            nonlocal done
            done += count
            rate = done / max(time.perf_counter() - started, 1e-9)
            bar.update(task, advance=count, rate=f"{rate:,.1f} reviews/s")

        for chunk in source.chunks:
            scores = classify(
                predictor,
                tokenize(predictor.encoder, chunk.texts),
                keep_pooled=keep_pooled,
                on_batch=advance,
            )
            yield ScoredChunk(chunk.keys, chunk.texts, scores.probs, scores.pooled)
