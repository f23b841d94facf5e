"""The model code of a folder written by `imdb export --format hf`.

`save_pretrained` copies this file verbatim into the exported folder (the classes below are
registered for the auto classes), and transformers runs it there when a user loads the
folder with `trust_remote_code=True`. So it imports only torch and transformers, never
`imdb_cli`; `imdb predict DIR` does not run it at all (it reads the config and weights
into imdb's own EncoderForClassification).

The model is the one `imdb train` trains: the base encoder, the mean of its last hidden
states over the real tokens (masked mean pooling), and a linear head. The transformers
classification heads pool differently ([CLS] token, BERT's pooler), which would silently
change every prediction; hence this file.

It also cuts reviews longer than the run's max length the way the run was trained (head,
tail, or head+tail), so that the usual call, `pipeline(...)(texts)` with no truncation
options, gives the run's own predictions. Give it untruncated, right-padded token ids.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

MODEL_TYPE = "imdb-classifier"


class ImdbClassifierConfig(PretrainedConfig):
    """The base encoder's own config (`encoder`), the run's class names (`label_names`; the
    upper-cased ones are id2label) and its truncation.

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
        return AutoConfig.for_model(values.pop("model_type"), **values)


class ImdbClassifier(PreTrainedModel):
    """Encoder + masked mean pooling + linear head, as trained by `imdb train`."""

    config_class = ImdbClassifierConfig
    base_model_prefix = "encoder"
    _supports_sdpa = True

    def __init__(self, config: ImdbClassifierConfig) -> None:
        super().__init__(config)
        # The encoder is one of transformers' own models: no code of a repo is ever run for it.
        self.encoder = AutoModel.from_config(config.encoder_config(), trust_remote_code=False)
        self.head = nn.Linear(int(self.encoder.config.hidden_size), len(config.label_names))
        parameters = inspect.signature(self.encoder.forward).parameters.values()
        # Only the inputs the encoder's forward names: ModernBERT takes **kwargs and would
        # choke on token_type_ids, which BERT tokenizers return.
        self._accepted = {
            p.name
            for p in parameters
            if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        }
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
        input_ids, attention_mask = self.cut(input_ids, attention_mask)
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in self._accepted:
            inputs["token_type_ids"] = torch.zeros_like(input_ids)
        hidden = self.encoder(**inputs).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        logits = self.head(pooled)
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.float(), labels.view(-1))
        return SequenceClassifierOutput(loss=loss, logits=logits)

    def cut(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Reviews longer than max_length cut as the run was trained; shorter ones as they are.

        A cut review keeps its special tokens, `head` text tokens from its start and the
        rest of the budget from its end (head: all from the start; tail: all from the end).
        """
        settings = self.config.truncation
        limit = int(settings["max_length"])
        lengths = attention_mask.sum(dim=1)
        if int(lengths.max()) <= limit:
            return input_ids, attention_mask
        prefix, suffix = int(settings["prefix_tokens"]), int(settings["suffix_tokens"])
        budget = limit - prefix - suffix
        head = min(int(settings["head_tokens"]), budget)
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


ImdbClassifierConfig.register_for_auto_class()
ImdbClassifier.register_for_auto_class("AutoModelForSequenceClassification")
