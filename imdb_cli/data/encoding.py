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

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        tok = self.tokenizer
        if self.truncation == "head":
            rows = self._head_rows(texts)
        else:
            bare = tok(
                texts,
                add_special_tokens=False,
                truncation=False,
                return_attention_mask=False,
                return_token_type_ids=False,
            )["input_ids"]
            return self._cut([self.prefix + list(ids) + self.suffix for ids in bare])
        input_ids = np.full((len(texts), self.max_length), self.pad_id, dtype=np.int32)
        lengths = np.empty(len(texts), dtype=np.int32)
        for i, row in enumerate(rows):
            input_ids[i, : len(row)] = row
            lengths[i] = len(row)
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
