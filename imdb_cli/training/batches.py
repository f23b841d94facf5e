"""Batch order: which reviews each training step sees, and a batch as the model takes it.

The order of an epoch is a pure function of (seed, epoch), with or without
--group-by-length, so a resumed run replays exactly what an uninterrupted run would see.
Under DDP each rank takes every world_size-th review of that order. A batch is a slice of
the cache's numpy arrays (no DataLoader, no collate copies), trimmed to its longest review
and copied to the device through pinned memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from imdb_cli.data.tokenized import TokenizedSplit
from imdb_cli.device import to_device
from imdb_cli.model import Packing


@dataclass(frozen=True)
class Batch:
    input_ids: torch.Tensor  # int64 [B, W], W = longest review of the batch
    # int64 [B, W]; None when every review fills the W columns. The model then needs no
    # mask: transformers skips building one (no check of the mask's contents, which is a
    # host sync per forward on a GPU) and SDPA may take its flash kernel.
    attention_mask: torch.Tensor | None
    labels: torch.Tensor  # int64 [B]
    packing: Packing | None = None  # a padded batch for a model that packs (see model.py)

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The training order of epoch `epoch`: a pure function of (seed, epoch), so a resumed
    run replays exactly the order an uninterrupted run would have used."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator).numpy()


GROUP_SPAN = 50  # batches per length-sorted block of --group-by-length (as the HF Trainer's)


def length_grouped(
    order: np.ndarray, lengths: np.ndarray, batch_size: int, seed: int, epoch: int
) -> np.ndarray:
    """`order` rearranged so that each batch holds reviews of similar length (--group-by-length).

    Each run of GROUP_SPAN batches of the shuffled order is sorted by length, then the full
    batches are shuffled among themselves (seeded by seed and epoch, so resume replays it):
    batches keep their randomness across the epoch, but a batch is trimmed to a width close
    to each of its reviews' lengths instead of its longest of a random draw. A short last
    batch stays last, so every other batch is full. Under DDP the ranks split each global
    batch (see `batches`), so grouping by the global batch size groups every rank's share.
    """
    lengths = np.asarray(lengths)
    span = batch_size * GROUP_SPAN
    blocks = [order[i : i + span] for i in range(0, len(order), span)]
    grouped = np.concatenate(
        [block[np.argsort(-lengths[block], kind="stable")] for block in blocks]
        or [np.zeros(0, np.int64)]
    )
    full = len(grouped) // batch_size
    shuffle = np.random.default_rng([seed, epoch]).permutation(full)
    head = grouped[: full * batch_size].reshape(full, batch_size)[shuffle].reshape(-1)
    return np.concatenate([head, grouped[full * batch_size :]])


def batches(
    n: int,
    batch_size: int,
    order: np.ndarray | None = None,
    *,
    rank: int = 0,
    world_size: int = 1,
) -> Iterator[np.ndarray]:
    """Index arrays of consecutive batches over `order` (default 0..n-1).

    With world_size > 1 each rank takes every world_size-th review of the order, so the
    ranks see disjoint shards of the same permutation.
    """
    indices = np.arange(n) if order is None else np.asarray(order)
    shard = indices[rank::world_size]
    for start in range(0, len(shard), batch_size):
        yield shard[start : start + batch_size]


def make_batch(
    split: TokenizedSplit, idx: np.ndarray, device: torch.device, *, pack: bool = False
) -> Batch:
    """Slice the cache's arrays; trim padding columns no review of the batch uses.

    `pack` (the model packs padded batches): add where the real tokens go end to end.
    """
    lengths = np.asarray(split.lengths[idx], dtype=np.int64)
    width = max(int(lengths.max()), 1)  # numpy on the host: no device sync
    input_ids = torch.from_numpy(np.asarray(split.input_ids[idx, :width], dtype=np.int64))
    labels = torch.from_numpy(np.asarray(split.labels[idx], dtype=np.int64))
    mask, packing = None, None
    if int(lengths.min()) < width:
        mask = (torch.arange(width)[None, :] < torch.from_numpy(lengths)[:, None]).long()
        mask = to_device(mask, device)
        packing = packing_of(lengths, width, device) if pack else None
    return Batch(to_device(input_ids, device), mask, to_device(labels, device), packing)


def limit_split(split: TokenizedSplit, limit: int | None, seed: int) -> TokenizedSplit:
    """A seeded random `limit` reviews of the split, kept in split order (--limit-train)."""
    if limit is None or limit >= len(split):
        return split
    chosen = np.random.default_rng(seed).choice(len(split), size=limit, replace=False)
    return split.subset(np.sort(chosen))


def packing_of(lengths: np.ndarray, width: int, device: torch.device) -> Packing:
    """Where the real tokens of a padded batch of `width` go when packed into one row, built
    on the host from the reviews' lengths (no device sync) and copied to the device once."""
    lengths = np.asarray(lengths, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    positions = np.arange(int(starts[-1])) - np.repeat(starts[:-1], lengths)
    reviews = np.repeat(np.arange(len(lengths)), lengths)

    def put(array: np.ndarray, dtype: torch.dtype = torch.int64) -> torch.Tensor:
        return to_device(torch.from_numpy(array).to(dtype), device)

    return Packing(
        indices=put(reviews * width + positions),
        position_ids=put(positions[None, :]),
        segments=put(reviews),
        lengths=put(lengths),
        cu_seqlens=put(starts, torch.int32),
        max_length=int(lengths.max()),
    )
