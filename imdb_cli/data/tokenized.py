"""A prepared data set as training and analysis read it: a tokenized cache entry and the
arrays of its splits (memory-mapped), with the texts behind them."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from imdb_cli.data.entry import DEFAULT_DATASET, LEGACY_LABELS
from imdb_cli.data.sources import int64_column
from imdb_cli.data.store import (
    ARRAYS,
    array_file,
    read_manifest,
    read_split_table,
    split_dir_name,
)
from imdb_cli.errors import ImdbError, first_line


@dataclass(frozen=True)
class TokenizedCache:
    """One tokenized cache entry: cache/<fingerprint>/<tokenizer-key>-len<L>-seed<S>[-...]/."""

    path: Path
    manifest: dict[str, Any]
    reused: bool = False

    @property
    def data_fingerprint(self) -> str:
        return str(self.manifest["data_fingerprint"])

    @property
    def max_length(self) -> int:
        return int(self.manifest["max_length"])

    @property
    def truncation(self) -> str:
        return str(self.manifest["truncation"])

    @property
    def seed(self) -> int:
        return int(self.manifest["seed"])

    @property
    def tokenizer_key(self) -> str:
        return str(self.manifest["tokenizer_key"])

    @property
    def pad_token_id(self) -> int:
        return int(self.manifest["pad_token_id"])

    @property
    def dataset(self) -> str:
        """The data set's name (caches made before dataset entries hold IMDB)."""
        return str(self.manifest.get("dataset", DEFAULT_DATASET))

    @property
    def label_names(self) -> list[str]:
        """Class names by class id."""
        names = self.manifest.get("labels")
        return [str(n) for n in names] if isinstance(names, list) else list(LEGACY_LABELS)

    @property
    def split_dir(self) -> Path:
        return self.path.parent / split_dir_name(self.seed)

    def sizes(self) -> dict[str, int]:
        return {s: int(n) for s, n in self.manifest["sizes"].items()}


@dataclass
class TokenizedSplit:
    """Token ids of one split. Attention mask = arange(L) < lengths[:, None]."""

    review_ids: np.ndarray  # int64 (N,)
    input_ids: np.ndarray  # int32 (N, L), right-padded with pad_token_id
    lengths: np.ndarray  # int32 (N,)
    labels: np.ndarray  # int64 (N,)
    pad_token_id: int

    def __len__(self) -> int:
        return len(self.review_ids)

    def attention_mask(self) -> np.ndarray:
        return np.arange(self.input_ids.shape[1]) < self.lengths[:, None]

    def subset(self, indices: np.ndarray) -> TokenizedSplit:
        """The reviews at `indices`, in that order (copied out of the memory map)."""
        return replace(
            self,
            review_ids=np.asarray(self.review_ids[indices]),
            input_ids=np.asarray(self.input_ids[indices]),
            lengths=np.asarray(self.lengths[indices]),
            labels=np.asarray(self.labels[indices]),
        )


def open_cache(path: Path) -> TokenizedCache | None:
    """The tokenized cache entry at `path`, or None when there is no complete one there."""
    manifest = read_manifest(path)
    if manifest is None or manifest.get("kind") != "tokenized":
        return None
    return TokenizedCache(path, manifest, reused=True)


def load_split(cache: TokenizedCache, split: str, *, mmap: bool = True) -> TokenizedSplit:
    """The arrays of one split (memory-mapped read-only unless mmap=False)."""
    mode: Literal["r"] | None = "r" if mmap else None
    arrays: dict[str, np.ndarray] = {}
    for name in ARRAYS:
        path = cache.path / array_file(split, name)
        try:
            arrays[name] = np.load(path, mmap_mode=mode)
        except (OSError, ValueError) as exc:
            raise ImdbError(
                f"{path}: cannot read ({first_line(exc)}); rerun `imdb prepare`"
            ) from exc
    loaded = TokenizedSplit(
        review_ids=arrays["review_ids"],
        input_ids=arrays["input_ids"],
        lengths=arrays["lengths"],
        labels=arrays["labels"],
        pad_token_id=cache.pad_token_id,
    )
    problem = _damage(loaded, cache)
    if problem is not None:
        raise ImdbError(
            f"{cache.path}: the {split} split is damaged ({problem}); delete this folder and "
            "rerun `imdb prepare`"
        )
    return loaded


def _damage(split: TokenizedSplit, cache: TokenizedCache) -> str | None:
    """What is wrong with a split's arrays, or None. Same-size damage (a flipped byte) passes
    a length check, so the values are checked too: ids within the vocabulary, lengths
    within the max length (the model would fail deep inside, or silently read padding)."""
    n = len(split.review_ids)
    if split.input_ids.ndim != 2 or split.input_ids.shape != (n, cache.max_length):
        return f"token ids of shape {split.input_ids.shape}, expected ({n}, {cache.max_length})"
    if split.lengths.shape != (n,) or split.labels.shape != (n,):
        return "its arrays hold different numbers of reviews"
    if n == 0:
        return None
    if int(split.lengths.min()) < 1 or int(split.lengths.max()) > cache.max_length:
        return f"review lengths outside 1..{cache.max_length}"
    vocab = cache.manifest.get("vocab_size")
    low, high = int(split.input_ids.min()), int(split.input_ids.max())
    if low < 0 or (isinstance(vocab, int) and high >= vocab):
        limit = f" of {vocab} tokens" if isinstance(vocab, int) else ""
        return f"token ids outside the vocabulary{limit} (from {low} to {high})"
    classes = len(cache.label_names)
    if int(split.labels.min()) < 0 or int(split.labels.max()) >= classes:
        return f"class ids outside 0..{classes - 1} ({classes} labels)"
    return None


def check_vocabulary(split: TokenizedSplit, vocab_size: int, where: Path) -> None:
    """Every token id has an embedding row (for caches written before `vocab_size` was
    recorded in their manifest)."""
    if len(split) and int(split.input_ids.max()) >= vocab_size:
        raise ImdbError(
            f"{where}: token ids up to {int(split.input_ids.max())} but the model has "
            f"{vocab_size} token embeddings (damaged cache?); delete it and rerun `imdb prepare`"
        )


def load_texts(cache: TokenizedCache, split: str) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Review ids, texts and labels of one split, in the same order as `load_split`."""
    table = read_split_table(cache.split_dir, split)
    review_ids = int64_column(table.column("review_id"))
    expected = np.load(cache.path / array_file(split, "review_ids"), mmap_mode="r")
    if not np.array_equal(review_ids, expected):
        raise ImdbError(
            f"{cache.split_dir}: {split} reviews do not match {cache.path}; rerun `imdb prepare`"
        )
    return (
        review_ids,
        table.column("text").to_pylist(),
        int64_column(table.column("label")),
    )
