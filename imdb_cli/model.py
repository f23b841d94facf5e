"""EncoderForClassification: encoder + masked mean pooling + a linear head over 2 classes."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from imdb_cli.registry import accepted_inputs

NUM_LABELS = 2


class ClassifierOutput(NamedTuple):
    logits: torch.Tensor
    pooled: torch.Tensor


def masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens only: padding positions never enter the sum or the count.

    Kernels differ in what they put at padded positions, so an unmasked mean would make
    an embedding depend on how much padding its batch had.
    """
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * mask).sum(dim=1)
    counts = mask.sum(dim=1).clamp(min=1.0)
    return summed / counts


class EncoderForClassification(nn.Module):
    def __init__(self, encoder: nn.Module, num_labels: int = NUM_LABELS) -> None:
        super().__init__()
        self.encoder = encoder
        hidden_size = int(encoder.config.hidden_size)  # type: ignore[union-attr, arg-type]
        self.head = nn.Linear(hidden_size, num_labels)
        self.accepted = accepted_inputs(encoder)

    def encoder_inputs(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Only the inputs the encoder's forward accepts (BERT: token_type_ids; ModernBERT: not)."""
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in self.accepted:
            inputs["token_type_ids"] = (
                token_type_ids if token_type_ids is not None else torch.zeros_like(input_ids)
            )
        return inputs

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> ClassifierOutput:
        inputs = self.encoder_inputs(input_ids, attention_mask, token_type_ids)
        hidden = self.encoder(**inputs).last_hidden_state
        pooled = masked_mean(hidden, attention_mask)
        return ClassifierOutput(self.head(pooled), pooled)
