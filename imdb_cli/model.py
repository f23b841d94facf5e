"""The classifier: an encoder, masked mean pooling and a linear head; and the attention
kernel an encoder runs with (some models pack padded batches under flash attention)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from imdb_cli.device import AUTOCAST_DTYPES, autocast, to_device
from imdb_cli.errors import ImdbError
from imdb_cli.registry import accepted_inputs

NUM_LABELS = 2


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


def choose_attention(name: str, model_type: str, device: torch.device, precision: str) -> str:
    """The encoder's attention kernel (--attention): a transformers `attn_implementation`.

    `auto` is SDPA, except for models whose padded batches can be packed (PACKING_MODELS:
    ModernBERT) on a GPU in bf16/fp16 with flash-attn installed: there flash attention with
    packing ("unpadding") skips every padded position, in attention and in the MLPs.
    """
    flash_ok = importlib.util.find_spec("flash_attn") is not None
    half = precision in AUTOCAST_DTYPES
    if name == "auto":
        packs = model_type in PACKING_MODELS and device.type == "cuda" and half and flash_ok
        return "flash_attention_2" if packs else "sdpa"
    if name == "flash_attention_2":
        if device.type != "cuda":
            raise ImdbError("--attention flash_attention_2 needs a CUDA GPU (use sdpa)")
        if not half:
            raise ImdbError("--attention flash_attention_2 needs --precision bf16 or fp16")
        if not flash_ok:
            raise ImdbError(
                "--attention flash_attention_2: the flash-attn package is not installed "
                "(pip install flash-attn, or use sdpa)"
            )
    return name


@dataclass(frozen=True)
class Packing:
    """Where the real tokens of a padded batch go when laid end to end in one row.

    Built on the host from the reviews' lengths (no device sync), copied to the device once.
    """

    indices: torch.Tensor  # int64 [T]: positions of the real tokens in the flattened [B*W] batch
    position_ids: torch.Tensor  # int64 [1, T]: 0.. within each review
    segments: torch.Tensor  # int64 [T]: the review each token belongs to
    lengths: torch.Tensor  # int64 [B]
    cu_seqlens: torch.Tensor  # int32 [B+1]: where each review starts in the row, then T
    max_length: int

    @classmethod
    def of(cls, lengths: np.ndarray, width: int, device: torch.device) -> Packing:
        lengths = np.asarray(lengths, dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)])
        positions = np.arange(int(starts[-1])) - np.repeat(starts[:-1], lengths)
        reviews = np.repeat(np.arange(len(lengths)), lengths)

        def put(array: np.ndarray, dtype: torch.dtype = torch.int64) -> torch.Tensor:
            return to_device(torch.from_numpy(array).to(dtype), device)

        return cls(
            indices=put(reviews * width + positions),
            position_ids=put(positions[None, :]),
            segments=put(reviews),
            lengths=put(lengths),
            cu_seqlens=put(starts, torch.int32),
            max_length=int(lengths.max()),
        )


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


class EncoderForClassification(nn.Module):
    def __init__(self, encoder: nn.Module, num_labels: int = NUM_LABELS) -> None:
        super().__init__()
        self.encoder = encoder
        hidden_size = int(encoder.config.hidden_size)  # type: ignore[union-attr, arg-type]
        self.head = nn.Linear(hidden_size, num_labels)
        self.accepted = accepted_inputs(encoder)
        config = encoder.config  # type: ignore[union-attr]
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
        """Only the inputs the encoder's forward accepts (BERT: token_type_ids; ModernBERT: not).

        `attention_mask` None means no padding (see training.batches.Batch).
        """
        if attention_mask is not None and self.ready_mask:
            attention_mask = attention_mask[:, None, None, :].bool()  # [B, 1, 1, W]: keys
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in self.accepted:
            inputs["token_type_ids"] = (
                token_type_ids if token_type_ids is not None else torch.zeros_like(input_ids)
            )
        return inputs

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        token_type_ids: torch.Tensor | None = None,
        packing: Packing | None = None,
    ) -> ClassifierOutput:
        """`packing` (training.batches.make_batch gives one when `self.packs` and the batch
        has padding): run the encoder on the real tokens only; the same result as padded."""
        if packing is not None:
            pooled = self._packed_mean(input_ids, packing)
        else:
            inputs = self.encoder_inputs(input_ids, attention_mask, token_type_ids)
            hidden = self.encoder(**inputs).last_hidden_state
            pooled = masked_mean(hidden, attention_mask)
        return ClassifierOutput(self.head(pooled), pooled)

    def freeze_unreached(self, device: torch.device, precision: str = "fp32") -> list[str]:
        """Stop asking for gradients of parameters the forward never reaches; their names.

        BERT's own pooler is the usual one: this head pools by masked mean, so the pooler
        never gets a gradient and never changes. Frozen, DDP needs no search for unused
        parameters after every backward (find_unused_parameters=False), and the optimizer
        skips them. Found with one tiny forward and backward, in eval mode and with the RNG
        state restored afterwards, so the run's randomness is untouched; in the run's
        precision, because flash attention refuses fp32.
        """
        was_training = self.training
        ids = torch.ones((2, 4), dtype=torch.long, device=device)
        mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], device=device)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            self.eval()
            with autocast(device, precision):
                logits = self(ids, mask).logits
            logits.float().sum().backward()
        unreached = [n for n, p in self.named_parameters() if p.requires_grad and p.grad is None]
        for name, parameter in self.named_parameters():
            parameter.grad = None
            if name in unreached:
                parameter.requires_grad_(False)
        self.train(was_training)
        return unreached

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
