"""The classifier: an encoder, masked mean pooling and a linear head; and how a review longer
than the run's max length is cut (head, tail or head+tail).

This one file is the model that `imdb train` trains and the model code that `imdb export
--format hf` hands over: the export copies it, as `modeling_imdb.py`, into the folder, and
transformers runs it there when a user loads the folder with `trust_remote_code=True`. So
it imports only torch and transformers, never `imdb_cli` (`imdb predict DIR` does not run
the copy; it reads the folder's config and weights into this module's classes).

The transformers classification heads pool differently ([CLS] token, BERT's pooler), which
would silently change every prediction; hence a model of our own.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

NUM_LABELS = 2
MODEL_TYPE = "imdb-classifier"
TRUNCATIONS = ("head", "tail", "head+tail")
# Sun et al. 2019 keep 128 head + 382 tail tokens of 512: a quarter from the head.
HEAD_SHARE = 128 / 512

# Models whose forward can take a padded batch packed into one row (flash attention's
# variable-length kernel, told where each review starts; rotary positions from position_ids).
# Checked against transformers 5.x's ModernBertModel, which passes the kernel arguments
# (cu_seq_lens_*, max_length_*) through to every attention layer.
PACKING_MODELS = frozenset({"modernbert"})
PACKING_ATTENTION = frozenset({"flash_attention_2", "flash_attention_3"})
# Models whose every layer attends to the whole review and that build their masks with
# transformers' create_bidirectional_mask: under SDPA they get a ready 4-D boolean mask,
# which transformers uses as is. Given the 2-D mask, it would first check whether any token
# is padding (`mask.all()`): a host-device sync in every forward of a padded batch.
READY_MASK_MODELS = frozenset({"bert", "roberta"})


# --------------------------------------------------------------------------- truncation


def head_tokens(strategy: str, max_length: int, content: int) -> int:
    """How many text tokens a cut review keeps from its start (the rest of its `content`
    budget, max_length less the special tokens, comes from its end)."""
    if strategy == "head":
        return content
    if strategy == "tail":
        return 0
    return min(int(max_length * HEAD_SHARE), content)


def cut(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, truncation: Mapping[str, Any]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded reviews longer than `truncation["max_length"]` cut as the run was
    trained; shorter ones as they are.

    A cut review keeps its special tokens (`prefix_tokens` before the text, `suffix_tokens`
    after it), `head_tokens` text tokens from its start and the rest of the budget from its
    end. The one rule for training data (data/encoding.py), the exported model and predict.
    """
    limit = int(truncation["max_length"])
    lengths = attention_mask.sum(dim=1)
    if input_ids.shape[1] <= limit:
        return input_ids, attention_mask
    prefix, suffix = int(truncation["prefix_tokens"]), int(truncation["suffix_tokens"])
    budget = limit - prefix - suffix
    head = min(int(truncation["head_tokens"]), budget)
    column = torch.arange(limit, device=input_ids.device).unsqueeze(0)
    end = lengths.unsqueeze(1)  # one past a review's last token
    tail_start = end - suffix - (budget - head)  # where its kept end part starts
    kept = torch.where(
        column < prefix + head,
        column,
        torch.where(
            column < limit - suffix,
            tail_start + (column - prefix - head),
            end - suffix + (column - (limit - suffix)),
        ),
    )
    long = (lengths > limit).unsqueeze(1)
    positions = torch.where(long, kept, column).clamp(max=input_ids.shape[1] - 1)
    ids = torch.gather(input_ids, 1, positions)
    mask = (column < lengths.clamp(max=limit).unsqueeze(1)).to(attention_mask.dtype)
    return ids, mask


# --------------------------------------------------------------------------- the classifier


def accepted_inputs(encoder: nn.Module | type[nn.Module]) -> frozenset[str]:
    """Names the encoder's forward takes explicitly.

    `**kwargs` does not count: ModernBERT's forward takes **kwargs and would silently
    ignore (or choke on) token_type_ids, which BERT tokenizers return.
    """
    parameters = inspect.signature(encoder.forward).parameters.values()
    return frozenset(
        p.name
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    )


@dataclass(frozen=True)
class Packing:
    """Where the real tokens of a padded batch go when laid end to end in one row (built
    on the host from the reviews' lengths, without a device sync: training/batches.py)."""

    indices: torch.Tensor  # int64 [T]: positions of the real tokens in the flattened [B*W] batch
    position_ids: torch.Tensor  # int64 [1, T]: 0.. within each review
    segments: torch.Tensor  # int64 [T]: the review each token belongs to
    lengths: torch.Tensor  # int64 [B]
    cu_seqlens: torch.Tensor  # int32 [B+1]: where each review starts in the row, then T
    max_length: int


class ClassifierOutput(NamedTuple):
    logits: torch.Tensor
    pooled: torch.Tensor


def masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over real tokens only: padding positions never enter the sum or the count.

    Kernels differ in what they put at padded positions, so an unmasked mean would make
    an embedding depend on how much padding its batch had. No mask: no padding.
    """
    if attention_mask is None:
        return hidden.mean(dim=1)
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * mask).sum(dim=1)
    counts = mask.sum(dim=1).clamp(min=1.0)
    return summed / counts


class PooledClassifier(nn.Module):
    """Encoder + masked mean pooling + linear head: the forward both classes below share.

    Subclasses set `encoder` (a transformers base model) and `head`, then call
    `_set_inputs()`."""

    encoder: nn.Module
    head: nn.Linear

    def _set_inputs(self) -> None:
        self.accepted = accepted_inputs(self.encoder)
        config: Any = self.encoder.config
        model_type = getattr(config, "model_type", None)
        attention = getattr(config, "_attn_implementation", None)
        self.packs = model_type in PACKING_MODELS and attention in PACKING_ATTENTION
        self.ready_mask = model_type in READY_MASK_MODELS and attention == "sdpa"

    def encoder_inputs(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        token_type_ids: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor | None]:
        """Only the inputs the encoder's forward accepts (BERT: token_type_ids; ModernBERT:
        not). `attention_mask` None means no padding."""
        if attention_mask is not None and self.ready_mask:
            attention_mask = attention_mask[:, None, None, :].bool()  # [B, 1, 1, W]: keys
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in self.accepted:
            inputs["token_type_ids"] = (
                token_type_ids if token_type_ids is not None else torch.zeros_like(input_ids)
            )
        return inputs

    def classify(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        token_type_ids: torch.Tensor | None = None,
        packing: Packing | None = None,
    ) -> ClassifierOutput:
        """Logits and pooled vectors. `packing` (given for a padded batch when `self.packs`):
        run the encoder on the real tokens only; the same result as padded."""
        if packing is not None:
            pooled = self._packed_mean(input_ids, packing)
        else:
            inputs = self.encoder_inputs(input_ids, attention_mask, token_type_ids)
            hidden = self.encoder(**inputs).last_hidden_state
            pooled = masked_mean(hidden, attention_mask)
        return ClassifierOutput(self.head(pooled), pooled)

    def _packed_mean(self, input_ids: torch.Tensor, packing: Packing) -> torch.Tensor:
        tokens = input_ids.reshape(-1).index_select(0, packing.indices).unsqueeze(0)
        hidden = self.encoder(
            input_ids=tokens,
            position_ids=packing.position_ids,
            cu_seq_lens_q=packing.cu_seqlens,
            cu_seq_lens_k=packing.cu_seqlens,
            max_length_q=packing.max_length,
            max_length_k=packing.max_length,
        ).last_hidden_state[0]
        sums = hidden.new_zeros(len(packing.lengths), hidden.shape[-1])
        sums.index_add_(0, packing.segments, hidden)
        return sums / packing.lengths.unsqueeze(-1).to(hidden.dtype)


class EncoderForClassification(PooledClassifier):
    """The classifier `imdb train` trains, around an encoder built by the registry."""

    def __init__(self, encoder: nn.Module, num_labels: int = NUM_LABELS) -> None:
        super().__init__()
        self.encoder = encoder
        hidden_size = int(encoder.config.hidden_size)  # type: ignore[union-attr, arg-type]
        self.head = nn.Linear(hidden_size, num_labels)
        self._set_inputs()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        token_type_ids: torch.Tensor | None = None,
        packing: Packing | None = None,
    ) -> ClassifierOutput:
        return self.classify(input_ids, attention_mask, token_type_ids, packing)


# --------------------------------------------------------------------------- the export


class ImdbClassifierConfig(PretrainedConfig):
    """An exported classifier: the base encoder's own config (`encoder`), the run's class
    names (`label_names`; the upper-cased ones are id2label) and its truncation.

    `truncation`: max_length (tokens per review, special tokens included), strategy (head,
    tail or head+tail), prefix_tokens / suffix_tokens (special tokens the tokenizer puts
    before / after a text), head_tokens (text tokens kept from the start of a review that
    is cut; the rest of the budget comes from its end).
    """

    model_type = MODEL_TYPE

    def __init__(
        self,
        encoder: dict[str, Any] | None = None,
        label_names: list[str] | None = None,
        truncation: dict[str, Any] | None = None,
        pooling: str = "mean",
        source: dict[str, Any] | None = None,
        quantization: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.encoder = dict(encoder or {})
        self.label_names = list(label_names or [])
        self.truncation = dict(truncation or {})
        self.pooling = pooling
        self.source = dict(source or {})  # the run this model comes from
        self.quantization = quantization  # of an ONNX export: None (fp32) or "int8"
        super().__init__(**kwargs)

    def encoder_config(self) -> PretrainedConfig:
        values = dict(self.encoder)
        # A folder's config is data: no code is fetched or run for it, whatever it names.
        return AutoConfig.for_model(values.pop("model_type"), **values)


class ImdbClassifier(PooledClassifier, PreTrainedModel):
    """The exported classifier: the trained one, taking whole reviews (it cuts a long one
    the way the run was trained), as `pipeline("text-classification")` calls it."""

    config_class = ImdbClassifierConfig
    base_model_prefix = "encoder"
    _supports_sdpa = True

    def __init__(self, config: ImdbClassifierConfig) -> None:
        PreTrainedModel.__init__(self, config)
        self.encoder = AutoModel.from_config(config.encoder_config(), trust_remote_code=False)
        hidden_size = int(self.encoder.config.hidden_size)  # type: ignore[union-attr, arg-type]
        self.head = nn.Linear(hidden_size, len(config.label_names))
        self._set_inputs()
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if module is getattr(self, "head", None):
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> SequenceClassifierOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        input_ids, attention_mask = cut(input_ids, attention_mask, self.config.truncation)
        logits = self.classify(input_ids, attention_mask).logits
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.float(), labels.view(-1))
        return SequenceClassifierOutput(loss=loss, logits=logits)
