"""Tokenizer identity and encoding: the key that names a tokenizer's behaviour, and the
Encoder that turns texts into token ids truncated the way --truncation says."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

import numpy as np

from imdb_cli.console import debug
from imdb_cli.errors import ImdbError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

# Pre-tokenizers that split at spaces first (so a text cut at a space keeps its tokens).
WORD_LOCAL_PRE_TOKENIZERS = frozenset({"BertPreTokenizer", "ByteLevel"})
HEAD_CHARS_PER_TOKEN = 8  # IMDB averages about 4.3 characters per bert-base-uncased token
# Reviews longer than this (IMDB's longest has some 14,000) are tokenized by their two ends
# only (Encoder._window_row), so memory stays bounded whatever one review's length.
LONG_REVIEW_CHARS = 100_000
# Mixed case, accents, punctuation, digits, an emoji and a long word: two tokenizers that
# agree on this text, their vocabulary and their special ids behave the same on IMDB.
PROBE_TEXT = (
    "Héllo, WORLD! Naïve café-goers' «review»: 10/10 -- DON'T miss it… "
    "Ångström & Müller <br /><br />(1999) 😀 unbelievably-overrated?!"
)


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

    def __init__(self, tokenizer: PreTrainedTokenizerBase, max_length: int, truncation: str):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.truncation = truncation
        self.pad_id = int(tokenizer.pad_token_id)
        self.prefix, self.suffix = _special_template(tokenizer)
        self.content = max_length - len(self.prefix) - len(self.suffix)
        # Sun et al. 2019 keep 128 head + 382 tail tokens of 512: a quarter from the head.
        self.head = max_length * 128 // 512
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
        # Very long reviews: only their two ends are tokenized (see _window_row).
        self.windows: bool | None = None if pre_tokenizer in WORD_LOCAL_PRE_TOKENIZERS else False

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        long = [i for i, text in enumerate(texts) if len(text) > LONG_REVIEW_CHARS]
        if long and self._windows_ok():
            rows: list[list[int]] = [[] for _ in texts]
            for i in long:
                rows[i] = self._window_row(texts[i])
            rest = [i for i, text in enumerate(texts) if len(text) <= LONG_REVIEW_CHARS]
            for i, row in zip(rest, self._rows([texts[i] for i in rest]), strict=True):
                rows[i] = row
        else:
            rows = self._rows(texts)
        input_ids = np.full((len(texts), self.max_length), self.pad_id, dtype=np.int32)
        lengths = np.empty(len(texts), dtype=np.int32)
        for i, row in enumerate(rows):
            input_ids[i, : len(row)] = row
            lengths[i] = len(row)
        return input_ids, lengths

    def _rows(self, texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        if self.truncation == "head":
            return self._head_rows(texts)
        return [self.prefix + self._cut(ids) + self.suffix for ids in self._bare(texts)]

    def _bare(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text, without special tokens or truncation."""
        ids = self.tokenizer(
            texts,
            add_special_tokens=False,
            truncation=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]
        return [list(row) for row in ids]

    def _window_row(self, text: str, window: int | None = None) -> list[int]:
        """The row of a review too long to tokenize whole (a 10 MB review would take GBs):
        only its two ends are tokenized, each cut at a space that starts a run of spaces.

        The tokenizers this is used for split at spaces before anything else, so the tokens
        of the start of a text are those of the whole text up to there, and the same holds
        for its end. Each end is made longer (four times) until it holds more than the run's
        max length of tokens; then the review is surely longer than that, and the kept tokens
        (head, tail or both) come from those ends. `_windows_ok` checks this on a probe text."""
        window = window or self.max_length * HEAD_CHARS_PER_TOKEN
        while True:
            start = _cut_at_space(text, window)
            end = _end_from_space(text, window)
            if len(start) + len(end) >= len(text):
                return self._rows([text])[0]  # the ends meet: the text is short enough
            head_ids, tail_ids = self._bare([start, end])
            if min(len(head_ids), len(tail_ids)) > self.content:
                break
            window *= 4
        if self.truncation == "head":
            kept = head_ids[: self.content]
        elif self.truncation == "tail":
            kept = tail_ids[-self.content :]
        else:
            head = min(self.head, self.content)
            tail = self.content - head
            kept = head_ids[:head] + (tail_ids[-tail:] if tail else [])
        return self.prefix + kept + self.suffix

    def _windows_ok(self) -> bool:
        """Whether `_window_row` gives this tokenizer's own rows: checked once, on a probe
        text made long (the probe, repeated) and cut with a small window."""
        if self.windows is None:
            probe = " ".join([PROBE_TEXT] * (self.max_length // 4 + 8))
            small = max(8, len(PROBE_TEXT) // 2)
            self.windows = self._window_row(probe, small) == self._rows([probe])[0]
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

    def _cut(self, ids: list[int]) -> list[int]:
        if len(ids) <= self.content:
            return ids
        if self.truncation == "tail":
            return ids[-self.content :]
        head = min(self.head, self.content)
        tail = self.content - head
        return ids[:head] + (ids[-tail:] if tail else [])
