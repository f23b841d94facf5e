"""Attention maps of one review, from an eager-attention copy of each run's best checkpoint.

Fast kernels (SDPA, flash attention) return no attention weights, so the maps come from a
copy loaded with `attn_implementation="eager"`. If a model still returns none, this is an
error: a uniform placeholder would look like an answer and be none.

The prediction and the maps come from one forward pass of the classifier itself: a hook
on its encoder keeps the attention weights that the encoder returns alongside the hidden
states the classifier pools.

Layers are numbered from 0, as in the model's config (`config.layer_types[i]`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from transformers import PretrainedConfig

from imdb_cli.analysis import folders, plotting
from imdb_cli.console import info, warn
from imdb_cli.data.encoding import Encoder
from imdb_cli.device import choose_device
from imdb_cli.errors import ImdbError
from imdb_cli.files import write_json_atomic
from imdb_cli.model import EncoderForClassification
from imdb_cli.runs import checkpoints
from imdb_cli.runs.run import Run
from imdb_cli.workspace import Workspace

KIND = "attention"
FULL = "full_attention"
SLIDING = "sliding_attention"
MEAN_HEADS = "mean"
TOP_TOKENS = 10
# Attention whose rows have at least this share of the largest possible entropy (every
# visible key weighted alike) is near-uniform: no token stands out, so none is ranked.
NEAR_UNIFORM = 0.95


@dataclass(frozen=True)
class EncodedReview:
    """A review as the run's tokenizer sees it, truncated as the run was trained."""

    text: str
    input_ids: list[int]
    tokens: list[str]  # the tokenizer's own tokens, special tokens included
    special: list[bool]  # True for [CLS], [SEP], <s>, ...
    cut_tokens: int  # how many tokens truncation dropped (0 when the review fits)


@dataclass(frozen=True)
class LayerSelection:
    """`--layer last|N|all` and `--head mean|N`, before they are checked against a model."""

    layer: str = "last"
    head: str = MEAN_HEADS

    @classmethod
    def parse(cls, layer: str, head: str) -> LayerSelection:
        layer, head = layer.strip().lower(), head.strip().lower()
        if layer not in ("last", "all") and not _is_index(layer):
            raise ImdbError(f"--layer {layer!r}: use last, all, or a layer number from 0")
        if head != MEAN_HEADS and not _is_index(head):
            raise ImdbError(f"--head {head!r}: use mean or a head number from 0")
        return cls(layer, head)

    def layers_of(self, model: str, num_layers: int) -> list[int]:
        if self.layer == "last":
            return [num_layers - 1]
        if self.layer == "all":
            return list(range(num_layers))
        index = int(self.layer)
        if index >= num_layers:
            raise ImdbError(
                f"--layer {index}: model '{model}' has layers 0..{num_layers - 1} "
                "(or use last, all)"
            )
        return [index]

    def head_of(self, model: str, num_heads: int) -> int | None:
        """None means the mean over heads."""
        if self.head == MEAN_HEADS:
            return None
        index = int(self.head)
        if index >= num_heads:
            raise ImdbError(
                f"--head {index}: model '{model}' has heads 0..{num_heads - 1} (or use mean)"
            )
        return index


def _is_index(text: str) -> bool:
    return text.isascii() and text.isdigit()


@dataclass(frozen=True)
class LayerAttention:
    layer: int
    layer_type: str  # FULL or SLIDING, as config.layer_types names it
    window: int | None  # a sliding layer's query i sees only keys j with |i - j| <= window
    head: int | None  # None: the mean over all heads
    matrix: np.ndarray  # [tokens, tokens]: row = query token, column = key token; rows sum to 1

    def visible(self) -> np.ndarray:
        """[queries, keys] bool: which keys each query can attend to."""
        count = self.matrix.shape[0]
        if self.window is None:
            return np.ones((count, count), dtype=bool)
        distance = np.abs(np.subtract.outer(np.arange(count), np.arange(count)))
        return distance <= self.window

    @property
    def received(self) -> np.ndarray:
        """Share of all attention each token receives (mean over every query; sums to 1)."""
        return np.asarray(self.matrix.mean(axis=0))

    @property
    def coverage(self) -> np.ndarray:
        """How many query tokens can see each token: all of them in a full layer; in a
        sliding layer fewer near the ends of the review, most in the middle."""
        return self.visible().sum(axis=0).astype(np.float64)

    @property
    def received_per_query(self) -> np.ndarray:
        """Attention each token receives, averaged over the queries that can see it. In a
        sliding layer the plain mean (`received`) rises in the middle only because more
        queries reach the middle tokens; this removes that."""
        return np.asarray(self.matrix.sum(axis=0) / self.coverage)

    @property
    def uniformity(self) -> float:
        """Mean over queries of the row's entropy / log(keys it can see): 1 is uniform."""
        visible = self.visible().sum(axis=1)
        probs = np.clip(self.matrix.astype(np.float64), 0.0, None)
        logs = np.log(np.where(probs > 0, probs, 1.0))
        entropy = -(probs * logs).sum(axis=1)
        rows = visible > 1
        if not rows.any():
            return 1.0
        return float(np.mean(entropy[rows] / np.log(visible[rows])))


@dataclass(frozen=True)
class ModelAttention:
    model: str  # the run's model key
    run: Run
    checkpoint: Path
    review: EncodedReview
    probs: np.ndarray  # [classes]: the classifier's probability of each class
    classes: list[str]  # class names, by class id (the run's label names)
    num_layers: int
    num_heads: int
    layers: list[LayerAttention]

    @property
    def predicted(self) -> int:
        """The most probable class (ties to the lower id, as training's argmax)."""
        return int(np.argmax(self.probs))

    @property
    def prediction(self) -> str:
        """`neutral (P = 0.912)`: the predicted class's name and probability."""
        return f"{self.classes[self.predicted]} (P = {float(self.probs[self.predicted]):.3f})"

    @property
    def received(self) -> np.ndarray:
        """Share of the attention each token receives, over the selected layers (sums to 1)."""
        return np.mean([layer.received for layer in self.layers], axis=0)

    @property
    def received_per_query(self) -> np.ndarray:
        """Attention received per token from the queries that can see it (what is drawn
        and ranked), averaged over the selected layers."""
        return np.mean([layer.received_per_query for layer in self.layers], axis=0)

    @property
    def has_local_layers(self) -> bool:
        return any(layer.window is not None for layer in self.layers)

    @property
    def uniformity(self) -> float:
        return float(np.mean([layer.uniformity for layer in self.layers]))

    @property
    def near_uniform(self) -> bool:
        return self.uniformity >= NEAR_UNIFORM

    @property
    def special_mass(self) -> float:
        """Share of the received attention that went to special tokens."""
        return float(self.received[np.asarray(self.review.special, dtype=bool)].sum())

    def top_tokens(self, k: int = TOP_TOKENS, *, with_special: bool = True) -> list[dict[str, Any]]:
        """The tokens that receive the most attention; none when the attention is
        near-uniform, where a ranking would be noise."""
        if self.near_uniform:
            return []
        received = self.received_per_query
        order = np.argsort(-received, kind="stable")
        rows = []
        for position in order:
            if not with_special and self.review.special[position]:
                continue
            rows.append(
                {
                    "position": int(position),
                    "token": self.review.tokens[position],
                    "special": bool(self.review.special[position]),
                    "received": round(float(received[position]), 6),
                }
            )
            if len(rows) == k:
                break
        return rows


def encode_review(encoder: Encoder, text: str) -> EncodedReview:
    """Tokenize one review exactly as the run's cache was tokenized (the run's own encoder,
    so head / tail / head+tail truncation match training); count what was cut."""
    if not text.strip():
        raise ImdbError("the review is empty (give some text with --review or --review-file)")
    tokenizer = encoder.tokenizer
    ids_row, lengths = encoder.encode([text])
    ids = [int(i) for i in ids_row[0, : int(lengths[0])]]
    bare = tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"]
    special = tokenizer.get_special_tokens_mask(ids, already_has_special_tokens=True)
    return EncodedReview(
        text=text,
        input_ids=ids,
        tokens=list(tokenizer.convert_ids_to_tokens(ids)),
        special=[bool(flag) for flag in special],
        cut_tokens=max(0, len(bare) - encoder.content),
    )


def layer_types(config: PretrainedConfig, num_layers: int) -> list[str]:
    """Each layer's attention type; models without `layer_types` (BERT) are all full."""
    types = getattr(config, "layer_types", None)
    return list(types) if types else [FULL] * num_layers


def sliding_window(config: PretrainedConfig) -> int:
    """How far a sliding layer sees on each side.

    ModernBERT's `local_attention` is the whole window, so a token sees
    local_attention // 2 tokens either side (|i - j| <= local_attention // 2).
    """
    local = getattr(config, "local_attention", None)
    if local is not None:
        return int(local) // 2
    return int(config.sliding_window)


def encoder_config(model: EncoderForClassification) -> PretrainedConfig:
    return cast(PretrainedConfig, model.encoder.config)


def no_attention_maps(config: PretrainedConfig, model_key: str) -> ImdbError:
    implementation = getattr(config, "_attn_implementation", None) or "unknown"
    return ImdbError(
        f"model '{model_key}' returned no attention maps (attention implementation "
        f"'{implementation}'); only eager attention returns them, and no placeholder is drawn"
    )


@contextlib.contextmanager
def _recording_attentions(model: EncoderForClassification, model_key: str) -> Iterator[list[Any]]:
    """Make the encoder return attention weights and keep them, for one forward pass."""
    config = encoder_config(model)
    before = config.output_attentions
    recorded: list[Any] = []

    def keep(_module: Any, _args: Any, _kwargs: Any, output: Any) -> None:
        recorded.append(getattr(output, "attentions", None))

    try:
        config.output_attentions = True
    except ValueError as exc:  # transformers refuses it outright for SDPA / flash kernels
        raise no_attention_maps(config, model_key) from exc
    handle = model.encoder.register_forward_hook(keep, with_kwargs=True)
    try:
        yield recorded
    finally:
        config.output_attentions = before
        handle.remove()


def attend(
    model: EncoderForClassification,
    review: EncodedReview,
    *,
    model_key: str,
    selection: LayerSelection,
) -> tuple[np.ndarray, list[LayerAttention], int, int]:
    """One forward pass: the class probabilities and the selected layers' attention maps."""
    config = encoder_config(model)
    num_layers, num_heads = int(config.num_hidden_layers), int(config.num_attention_heads)
    layers = selection.layers_of(model_key, num_layers)
    head = selection.head_of(model_key, num_heads)
    device = next(model.parameters()).device
    input_ids = torch.tensor([review.input_ids], dtype=torch.long, device=device)
    # One review, no padding: every key is a real token, so each row sums to 1 over all keys.
    attention_mask = torch.ones_like(input_ids)
    with torch.no_grad(), _recording_attentions(model, model_key) as recorded:
        output = model(input_ids, attention_mask)
    attentions = recorded[0] if recorded else None
    if not attentions or any(a is None for a in attentions):
        raise no_attention_maps(config, model_key)
    probs = torch.softmax(output.logits.float(), dim=-1)[0].cpu().numpy().astype(np.float64)
    types = layer_types(config, num_layers)
    window = sliding_window(config) if SLIDING in types else None
    maps = []
    for index in layers:
        weights = attentions[index][0].float()  # [heads, queries, keys]
        matrix = weights.mean(dim=0) if head is None else weights[head]
        maps.append(
            LayerAttention(
                layer=index,
                layer_type=types[index],
                window=window if types[index] == SLIDING else None,
                head=head,
                matrix=matrix.cpu().numpy(),
            )
        )
    return probs, maps, num_layers, num_heads


@dataclass(frozen=True)
class EagerModel:
    """A run's best checkpoint in an eager-attention copy, with the run's encoder."""

    run: Run
    model: EncoderForClassification
    checkpoint: Path
    encoder: Encoder

    @classmethod
    def load(cls, run: Run, device: torch.device | None = None) -> EagerModel:
        """fp32 on `device` (the CPU by default): attention maps need no mixed precision."""
        info(f"loading {run.model}/{run.run_id} (best checkpoint, eager attention)")
        model, checkpoint = checkpoints.load_classifier(run, attn_implementation="eager")
        model.to(device or torch.device("cpu"))
        return cls(run, model, checkpoint, run.encoder())

    def check(self, selection: LayerSelection) -> None:
        """Raise for a --layer or --head this model does not have."""
        config = encoder_config(self.model)
        selection.layers_of(self.run.model, int(config.num_hidden_layers))
        selection.head_of(self.run.model, int(config.num_attention_heads))

    def attention(self, text: str, selection: LayerSelection) -> ModelAttention:
        review = encode_review(self.encoder, text)
        probs, layers, num_layers, num_heads = attend(
            self.model, review, model_key=self.run.model, selection=selection
        )
        return ModelAttention(
            model=self.run.model,
            run=self.run,
            checkpoint=self.checkpoint,
            review=review,
            probs=probs,
            classes=self.run.ledger.label_names,
            num_layers=num_layers,
            num_heads=num_heads,
            layers=layers,
        )


def near_uniform_note(result: ModelAttention) -> str:
    return (
        f"near-uniform attention (entropy {result.uniformity:.0%} of the maximum): "
        "no token stands out, so none is ranked"
    )


def to_json(result: ModelAttention, *, review_id: int | None = None) -> dict[str, Any]:
    """Everything needed to redraw or query the maps, without the model."""
    return {
        "model": result.model,
        "run": str(result.run.path),
        "checkpoint": str(result.checkpoint),
        "review_id": review_id,
        "text": result.review.text,
        "prediction": {
            "label": result.classes[result.predicted],
            "probs": {
                name: round(float(p), 6)
                for name, p in zip(result.classes, result.probs, strict=True)
            },
        },
        "cut_tokens": result.review.cut_tokens,
        "tokens": result.review.tokens,
        "input_ids": result.review.input_ids,
        "special": result.review.special,
        "num_layers": result.num_layers,
        "num_heads": result.num_heads,
        "layers": [
            {
                "layer": layer.layer,
                "layer_type": layer.layer_type,
                "window": layer.window,
                "head": "mean" if layer.head is None else layer.head,
                "matrix": np.round(layer.matrix, 6).tolist(),
            }
            for layer in result.layers
        ],
        "received": np.round(result.received, 6).tolist(),
        # What the bar chart draws: per token, the mean over the queries that can see it.
        "received_per_query": np.round(result.received_per_query, 6).tolist(),
        "special_token_mass": round(result.special_mass, 6),
        "uniformity": round(result.uniformity, 6),
        "near_uniform": result.near_uniform,
        "top_tokens_note": near_uniform_note(result) if result.near_uniform else None,
        "top_tokens": result.top_tokens(),
        # The same ranking without special tokens; their share is special_token_mass above.
        "top_content_tokens": result.top_tokens(with_special=False),
    }


# --------------------------------------------------------------------------- reviews in


@dataclass(frozen=True)
class ReviewInput:
    """A review to explain and the folder name its files go under."""

    text: str
    name: str  # "review", the --review-file stem, or "review-<id>"
    review_id: int | None = None
    label: int | None = None  # the true label, when the review comes from the data


def review_from_text(text: str) -> ReviewInput:
    if not text.strip():
        raise ImdbError("--review is empty; give the review's text")
    return ReviewInput(text=text, name="review")


def review_from_file(path: Path) -> ReviewInput:
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise ImdbError(f"--review-file {path}: no such file") from exc
    except IsADirectoryError as exc:
        raise ImdbError(f"--review-file {path}: is a folder, not a file") from exc
    except OSError as exc:
        raise ImdbError(f"--review-file {path}: cannot read ({exc.strerror or exc})") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ImdbError(f"--review-file {path}: not UTF-8 text (byte {exc.start})") from exc
    if not text.strip():
        raise ImdbError(f"--review-file {path}: the file is empty")
    return ReviewInput(text=text, name=folders.safe_name(path.stem))


# --------------------------------------------------------------------------- files out


@dataclass(frozen=True)
class SavedAttention:
    review: ReviewInput
    label: str  # the run's name in titles and file names
    result: ModelAttention
    files: list[Path]


def _head_text(head: int | None, num_heads: int) -> str:
    return f"mean over {num_heads} heads" if head is None else f"head {head} of {num_heads}"


def _layers_text(result: ModelAttention) -> str:
    chosen = [layer.layer for layer in result.layers]
    if len(chosen) == 1:
        return f"layer {chosen[0]} of {result.num_layers}"
    return f"mean over layers {chosen[0]}-{chosen[-1]}"


def _layer_title(layer: LayerAttention, num_heads: int, *, short: bool) -> str:
    if short:
        kind = "local" if layer.layer_type == SLIDING else "global"
        return f"layer {layer.layer} ({kind})"
    title = f"layer {layer.layer} ({layer.layer_type}), {_head_text(layer.head, num_heads)}"
    if layer.window is not None:
        title += (
            f"\nsliding window: each token sees ±{layer.window} tokens (dashed band); "
            "weights outside it are 0"
        )
    return title


def save_attention(
    out_dir: Path, review: ReviewInput, result: ModelAttention, label: str
) -> list[Path]:
    """Heatmap, received-attention bars and JSON for one model on one review.

    `label` names the run in titles and file names (folders.run_labels)."""
    stem = folders.safe_name(label)
    encoded = result.review
    truth = "" if review.label is None else f", true label {result.classes[review.label]}"
    cut = f"; {encoded.cut_tokens} tokens cut at the max length" if encoded.cut_tokens else ""
    head = result.layers[0].head
    panels = [
        plotting.HeatmapPanel(
            title=_layer_title(layer, result.num_heads, short=len(result.layers) > 1),
            matrix=layer.matrix,
            window=layer.window,
        )
        for layer in result.layers
    ]
    which = f"layer{result.layers[0].layer}" if len(result.layers) == 1 else "all-layers"
    lines = [
        f"{label}: predicted {result.prediction}{truth}",
        f"{len(encoded.tokens)} tokens incl. special tokens (grey labels){cut}",
    ]
    if len(result.layers) > 1:
        lines.append(_head_text(head, result.num_heads))
        if any(layer.window is not None for layer in result.layers):
            lines.append("local layers: the dashed band is the ±window each token sees")
    suptitle = "\n".join(lines)
    files = [
        plotting.save_figure(
            plotting.heatmap_figure(encoded.tokens, encoded.special, panels, suptitle),
            out_dir / f"{stem}_{which}_heatmap.png",
        )
    ]
    over = (
        "mean over the query tokens that can see each token (local layers: within the window)"
        if result.has_local_layers
        else f"mean over the {len(encoded.tokens)} query tokens"
    )
    received_lines = [
        f"{label}: attention received per token, {_layers_text(result)}, "
        f"{_head_text(head, result.num_heads)}",
        f"{over}; special tokens in grey",
    ]
    if result.near_uniform:
        received_lines.append(near_uniform_note(result))
    received_title = "\n".join(received_lines)
    files.append(
        plotting.save_figure(
            plotting.received_figure(
                encoded.tokens,
                encoded.special,
                result.received_per_query,
                received_title,
                special_share=result.special_mass,
            ),
            out_dir / f"{stem}_{which}_received.png",
        )
    )
    json_path = out_dir / f"{stem}_{which}.json"
    write_json_atomic(json_path, to_json(result, review_id=review.review_id))
    files.append(json_path)
    return files


def explain(
    workspace: Workspace,
    runs: Sequence[Run],
    reviews: Sequence[ReviewInput],
    selection: LayerSelection,
    device: str = "auto",
) -> tuple[Path, list[SavedAttention]]:
    """Attention of every run on every review; files under analysis/attention/<timestamp>/."""
    if not runs:
        raise ImdbError("--models: give at least one model")
    if not reviews:
        raise ImdbError("no review to explain")
    labels = folders.run_labels(runs)
    chosen = choose_device(device)
    loaded = [EagerModel.load(run, chosen) for run in runs]
    for eager in loaded:  # a bad --layer / --head fails before any work is done
        eager.check(selection)
    out_dir = folders.new_output_dir(workspace, KIND)
    saved = []
    for review in reviews:
        for eager, label in zip(loaded, labels, strict=True):
            result = eager.attention(review.text, selection)
            if result.review.cut_tokens:
                cut = eager.run.ledger.tokenization
                warn(
                    f"{review.name}: {result.review.cut_tokens} tokens cut to fit "
                    f"{label}'s max length of {cut.max_length} ({cut.truncation} truncation)"
                )
            files = save_attention(out_dir / review.name, review, result, label)
            saved.append(SavedAttention(review, label, result, files))
    folders.point_latest(out_dir)
    return out_dir, saved
