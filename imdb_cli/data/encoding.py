"""Tokenizer identity and encoding: the key that names a tokenizer's behaviour, and the
Encoder that turns texts into token ids truncated the way --truncation says."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from imdb_cli.console import debug
from imdb_cli.errors import ImdbError
from imdb_cli.records import STRICT

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

# Pre-tokenizers that split at spaces first (so a text cut at a space keeps its tokens).
WORD_LOCAL_PRE_TOKENIZERS = frozenset({"BertPreTokenizer", "ByteLevel"})
HEAD_CHARS_PER_TOKEN = 8  # IMDB averages about 4.3 characters per bert-base-uncased token
# Reviews longer than this (IMDB's longest has some 14,000) are tokenized by their two ends
# only (Encoder._ends_row), so memory stays bounded whatever one review's length.
LONG_REVIEW_CHARS = 100_000
# Mixed case, accents, punctuation, digits, an emoji and a long word: two tokenizers that
# agree on this text, their vocabulary and their special ids behave the same on IMDB.
PROBE_TEXT = (
    "Héllo, WORLD! Naïve café-goers' «review»: 10/10 -- DON'T miss it… "
    "Ångström & Müller <br /><br />(1999) 😀 unbelievably-overrated?!"
)


@dataclass(frozen=True)
class Tokenization:
    """How a data set's reviews were cut into token ids: at most `max_length` tokens (special
    tokens included), a longer review keeping its head, tail or head+tail (`truncation`)."""

    __pydantic_config__ = STRICT

    max_length: int
    truncation: str = "head"


def tokenizer_key(tokenizer: PreTrainedTokenizerBase) -> str:
    """The tokenizer's behaviour as a name: class + hash of vocab, special ids, probe ids.

    Different names for the same tokenizer (bert-base-uncased, the MiniLM package) give
    the same key, so the models that use it share one tokenized cache.
    """
    digest = hashlib.sha256()
    vocab = sorted(tokenizer.get_vocab().items())
    digest.update(json.dumps(vocab, ensure_ascii=False).encode("utf-8"))
    special = {
        "all": sorted({int(i) for i in tokenizer.all_special_ids}),
        "pad": tokenizer.pad_token_id,
        "cls": tokenizer.cls_token_id,
        "sep": tokenizer.sep_token_id,
        "bos": tokenizer.bos_token_id,
        "eos": tokenizer.eos_token_id,
    }
    digest.update(json.dumps(special, sort_keys=True).encode("utf-8"))
    probe = [int(i) for i in tokenizer(PROBE_TEXT)["input_ids"]]
    digest.update(json.dumps(probe).encode("utf-8"))
    name = type(tokenizer).__name__.lower().removesuffix("fast")
    return f"{name}-{digest.hexdigest()[:10]}"


def _special_template(tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], list[int]]:
    """Ids the tokenizer puts before and after a single text (BERT: [CLS] / [SEP])."""
    build = getattr(tokenizer, "build_inputs_with_special_tokens", None)
    if callable(build):
        marker = -12345
        built = [int(i) for i in build([marker])]
        if built.count(marker) == 1:
            at = built.index(marker)
            return built[:at], built[at + 1 :]
    sample = "hello world"
    full = [int(i) for i in tokenizer(sample)["input_ids"]]
    bare = [int(i) for i in tokenizer(sample, add_special_tokens=False)["input_ids"]]
    for at in range(len(full) - len(bare) + 1):
        if full[at : at + len(bare)] == bare:
            return full[:at], full[at + len(bare) :]
    raise ImdbError(f"cannot tell which special tokens {type(tokenizer).__name__} adds")


def _end_from_space(text: str, budget: int) -> str:
    """The end of `text` from the start of the run of spaces that begins `budget` or more
    characters before its end (the whole text when there is none)."""
    at = len(text) - budget
    while at > 0:
        at = text.rfind(" ", 0, at + 1)
        if at <= 0:
            break
        if not text[at - 1].isspace():
            return text[at:]
        at -= 1
    return text


def _cut_at_space(text: str, budget: int) -> str:
    """`text` up to the first space after `budget` characters that ends a word."""
    at = budget
    while at < len(text):
        at = text.find(" ", at)
        if at < 0:
            break
        if not text[at - 1].isspace():
            return text[:at]
        at += 1
    return text


class Encoder:
    """Token ids of texts, truncated to max_length the way `truncation` says."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, tokenization: Tokenization):
        self.tokenizer = tokenizer
        self.tokenization = tokenization
        max_length, truncation = tokenization.max_length, tokenization.truncation
        self.max_length = max_length
        self.truncation = truncation
        self.pad_id = int(tokenizer.pad_token_id)
        self.prefix, self.suffix = _special_template(tokenizer)
        self.content = max_length - len(self.prefix) - len(self.suffix)
        if self.content < 1:
            raise ImdbError(f"--max-length {max_length} leaves no room for text")
        warnings = getattr(tokenizer, "deprecation_warnings", None)
        if isinstance(warnings, dict):  # "sequence longer than the model" is expected here
            warnings["sequence-length-is-longer-than-the-specified-maximum"] = True
        # Head truncation only needs the start of a long review: see _head_rows.
        backend = getattr(tokenizer, "backend_tokenizer", None)
        pre_tokenizer = type(getattr(backend, "pre_tokenizer", None)).__name__
        self.shortcut = truncation == "head" and pre_tokenizer in WORD_LOCAL_PRE_TOKENIZERS
        self.shortcut_checked = False
        # Very long reviews: only their two ends are tokenized (see _ends_row).
        self.windows: bool | None = None if pre_tokenizer in WORD_LOCAL_PRE_TOKENIZERS else False

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        ends = self._long_reviews(texts)  # index -> stand-in row of a very long review
        short = [i for i in range(len(texts)) if i not in ends]
        rows: dict[int, list[int]]
        if self.truncation != "head":
            bare = zip(short, self._bare([texts[i] for i in short]), strict=True)
            rows = {**ends, **{i: self.prefix + ids + self.suffix for i, ids in bare}}
            return self._cut([rows[i] for i in range(len(texts))])
        kept = len(self.prefix) + self.content
        rows = {i: row[:kept] + self.suffix for i, row in ends.items()}
        if short:
            heads = self._head_rows([texts[i] for i in short])
            rows.update((i, list(row)) for i, row in zip(short, heads, strict=True))
        input_ids = np.full((len(texts), self.max_length), self.pad_id, dtype=np.int32)
        lengths = np.empty(len(texts), dtype=np.int32)
        for i in range(len(texts)):
            input_ids[i, : len(rows[i])] = rows[i]
            lengths[i] = len(rows[i])
        return input_ids, lengths

    def truncation_settings(self) -> dict[str, int | str]:
        """How a review longer than max_length is cut (model.cut's settings): kept in an
        export's config, so the exported model cuts as the run's data was cut."""
        from imdb_cli.model import head_tokens  # torch: only where a model is in use

        return {
            "max_length": self.max_length,
            "strategy": self.truncation,
            "prefix_tokens": len(self.prefix),
            "suffix_tokens": len(self.suffix),
            "head_tokens": head_tokens(self.truncation, self.max_length, self.content),
        }

    def _bare(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text, without special tokens or truncation."""
        if not texts:
            return []
        ids = self.tokenizer(
            texts,
            add_special_tokens=False,
            truncation=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]
        return [list(row) for row in ids]

    def _long_reviews(self, texts: list[str]) -> dict[int, list[int]]:
        """Index -> stand-in row of each review too long to tokenize whole (see _ends_row)."""
        long = [i for i, text in enumerate(texts) if len(text) > LONG_REVIEW_CHARS]
        if not long or not self._windows_ok():
            return {}
        rows = {i: self._ends_row(texts[i]) for i in long}
        return {i: row for i, row in rows.items() if row is not None}

    def _ends_row(self, text: str, window: int | None = None) -> list[int] | None:
        """A stand-in for the row of a review too long to tokenize whole (a 10 MB review took
        1.8 GB): the special tokens around the first `content` tokens of its start and the
        last `content` of its end, which any truncation cuts exactly as it cuts the whole
        row. None when the review is short enough to tokenize whole after all.

        Only its two ends are tokenized, each cut at a space that starts a run of spaces:
        the tokenizers this is used for split at spaces before anything else, so the tokens
        of a text's start are those of the whole text up to there, and the same holds for
        its end. Each end grows (four times) until it holds more than `content` tokens; the
        review is then surely longer than max_length. `_windows_ok` checks it on a probe."""
        window = window or self.max_length * HEAD_CHARS_PER_TOKEN
        while True:
            start, end = _cut_at_space(text, window), _end_from_space(text, window)
            if len(start) + len(end) >= len(text):
                return None  # the ends meet
            head_ids, tail_ids = self._bare([start, end])
            if min(len(head_ids), len(tail_ids)) > self.content:
                kept = head_ids[: self.content] + tail_ids[-self.content :]
                return self.prefix + kept + self.suffix
            window *= 4

    def _windows_ok(self) -> bool:
        """Whether `_ends_row` cuts as the whole row cuts with this tokenizer: checked once,
        on a probe text made long (the probe, repeated) and taken with a small window."""
        if self.windows is None:
            probe = " ".join([PROBE_TEXT] * (self.max_length // 4 + 8))
            stand_in = self._ends_row(probe, max(8, len(PROBE_TEXT) // 2))
            whole = self.prefix + self._bare([probe])[0] + self.suffix
            self.windows = stand_in is not None and all(
                np.array_equal(a, b)
                for a, b in zip(self._cut([stand_in]), self._cut([whole]), strict=True)
            )
            if not self.windows:
                debug("tokenizing only the ends of long reviews differs here; turned off")
        return self.windows

    def _full_head_rows(self, texts: list[str]) -> list[list[int]]:
        return list(
            self.tokenizer(
                texts,
                truncation=True,
                max_length=self.max_length,
                return_attention_mask=False,
                return_token_type_ids=False,
            )["input_ids"]
        )

    def _head_rows(self, texts: list[str]) -> list[list[int]]:
        """Head-truncated ids, tokenizing only a prefix of each long review.

        Tokenizing a 2,000-character review to keep 126 tokens wastes most of the work. For
        tokenizers that split words at spaces before anything else, the tokens of the text
        before a space are the same whether or not the rest follows, so each text is cut
        at the first space after max_length * 8 characters; a cut text that then gives
        fewer than max_length tokens is tokenized again in full. The first batch is also
        tokenized in full and compared: any difference turns the shortcut off.
        """
        if not self.shortcut:
            return self._full_head_rows(texts)
        budget = self.max_length * HEAD_CHARS_PER_TOKEN
        cut = [_cut_at_space(text, budget) for text in texts]
        rows = self._full_head_rows(cut)
        redo = [
            i
            for i, row in enumerate(rows)
            if len(row) < self.max_length and len(cut[i]) < len(texts[i])
        ]
        if redo:
            for i, row in zip(redo, self._full_head_rows([texts[i] for i in redo]), strict=True):
                rows[i] = row
        if not self.shortcut_checked:
            self.shortcut_checked = True
            full = self._full_head_rows(texts)
            if [list(r) for r in full] != [list(r) for r in rows]:
                debug("prefix tokenization differs from full tokenization; turned off")
                self.shortcut = False
                return full
        return rows

    def _cut(self, rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """Whole reviews (special tokens included) cut to max_length by the one rule the
        exported model also follows (model.cut); ids padded, and the kept lengths."""
        import torch  # tail and head+tail truncation only: head needs no torch

        from imdb_cli.model import cut

        width = max(self.max_length, *(len(row) for row in rows)) if rows else self.max_length
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.int64)
        mask = torch.zeros((len(rows), width), dtype=torch.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.int64)
            mask[i, : len(row)] = 1
        kept, kept_mask = cut(ids, mask, self.truncation_settings())
        kept = torch.where(kept_mask.bool(), kept, self.pad_id)[:, : self.max_length]
        padded = np.full((len(rows), self.max_length), self.pad_id, dtype=np.int32)
        padded[:, : kept.shape[1]] = kept.numpy()
        return padded, kept_mask.sum(dim=1).numpy().astype(np.int32)
