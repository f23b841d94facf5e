"""IMDB in, tokenized splits out: read, deduplicate, split, tokenize once, cache on disk.

    raw IMDB (Hub id, or a local folder: Hub parquet layout or aclImdb/)
      -> train + test concatenated (review id = index in that concatenation)
      -> duplicate texts dropped (first occurrence kept), optional seeded --limit sample
      -> 80/10/10 seeded split, no text in two splits
      -> cache/<fingerprint>/split-seed42/                 {train,val,test}.parquet + manifest
      -> cache/<fingerprint>/<tokenizer-key>-len128-seed42/  int arrays per split + manifest

Every cache entry is built in a temporary folder next to its final place and renamed into
place once complete (manifest last), so a killed or concurrent `prepare` never leaves an
entry that a later run would trust. An entry is trusted only when its manifest parses,
matches the inputs asked for, and the arrays it lists exist with the right shapes.

The engine and analysis code use `find_tokenized_cache`, `load_split` and `load_texts`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from imdb_cli import registry
from imdb_cli.config import MIN_MAX_LENGTH, TRUNCATIONS, ModelSpec
from imdb_cli.console import debug, info, progress, warn
from imdb_cli.errors import ImdbError
from imdb_cli.files import pid_alive
from imdb_cli.workspace import Workspace

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

SPLITS = ("train", "val", "test")
DEFAULT_DATASET = "stanfordnlp/imdb"
DATA_DIR_ENV = "IMDB_DATA_DIR"
MIN_LIMIT = 10
VAL_FRACTION = 0.1
TEST_FRACTION = 0.1
TOKENIZE_BATCH = 1000
PARALLELISM_ENV = "TOKENIZERS_PARALLELISM"
# Pre-tokenizers that split at spaces first (so a text cut at a space keeps its tokens).
WORD_LOCAL_PRE_TOKENIZERS = frozenset({"BertPreTokenizer", "ByteLevel"})
HEAD_CHARS_PER_TOKEN = 8  # IMDB averages about 4.3 characters per bert-base-uncased token
FORMAT_VERSION = 1
TMP_PREFIX = ".tmp-"
MEMO_FILE = "tokenizer-memo.json"
ARRAYS = {  # name -> (dtype, 2-d with max_length columns?)
    "input_ids": (np.int32, True),
    "lengths": (np.int32, False),
    "labels": (np.int64, False),
    "review_ids": (np.int64, False),
}
# Mixed case, accents, punctuation, digits, an emoji and a long word: two tokenizers that
# agree on this text, their vocabulary and their special ids behave the same on IMDB.
PROBE_TEXT = (
    "Héllo, WORLD! Naïve café-goers' «review»: 10/10 -- DON'T miss it… "
    "Ångström & Müller <br /><br />(1999) 😀 unbelievably-overrated?!"
)
TOKENIZER_FILES = frozenset(
    {
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "added_tokens.json",
        "vocab.txt",
        "vocab.json",
        "merges.txt",
        "spiece.model",
        "sentencepiece.bpe.model",
        "tokenizer.model",
        "config.json",
    }
)


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class DataSource:
    """Where the raw reviews come from: a local folder, else a Hub dataset id."""

    data_dir: Path | None = None
    dataset: str = DEFAULT_DATASET
    # How the user named the folder, for error messages (`--data-dir` or `IMDB_DATA_DIR`).
    origin: str = field(default="--data-dir", compare=False)

    @classmethod
    def from_options(cls, data_dir: Path | None, dataset: str | None) -> DataSource:
        """`--data-dir` / `--dataset` as given; IMDB_DATA_DIR when neither is."""
        if data_dir is not None and dataset is not None:
            raise ImdbError("--data-dir and --dataset are alternatives: give one of them")
        if dataset is not None:
            if not dataset.strip():
                raise ImdbError("--dataset: give a Hugging Face dataset id, like stanfordnlp/imdb")
            return cls(dataset=dataset.strip())
        if data_dir is not None:
            return cls(data_dir=data_dir)
        env = os.environ.get(DATA_DIR_ENV, "").strip()
        if env:
            return cls(data_dir=Path(env), origin=DATA_DIR_ENV)
        return cls()

    def describe(self) -> str:
        if self.data_dir is None:
            return f"hub:{self.dataset}"
        return str(self.data_dir)


@dataclass(frozen=True)
class SplitOptions:
    """What changes which reviews land in which split."""

    seed: int = 42
    limit: int | None = None
    keep_duplicates: bool = False

    def check(self) -> None:
        if self.limit is not None and self.limit < MIN_LIMIT:
            raise ImdbError(f"--limit must be at least {MIN_LIMIT} (got {self.limit})")
        if self.seed < 0:
            raise ImdbError(f"--seed must not be negative (got {self.seed})")

    @property
    def fingerprint_suffix(self) -> str:
        suffix = f"-limit{self.limit}" if self.limit is not None else ""
        return suffix + ("-keepdups" if self.keep_duplicates else "")


class ArrowTexts:
    """String columns read from parquet or the Hub, kept as Arrow arrays until needed."""

    def __init__(self, chunks: list[pa.Array]) -> None:
        self.chunks = chunks

    def __len__(self) -> int:
        return sum(len(chunk) for chunk in self.chunks)

    def to_pylist(self) -> list[str]:
        texts: list[str] = []
        for chunk in self.chunks:
            texts.extend(chunk.to_pylist())
        return texts


class RawData:
    """All labelled reviews, train then test; review id = index.

    `texts` may be given as a list or as an Arrow string column (read from parquet): a
    cache hit only hashes the column's buffers and never builds 50k Python strings.
    """

    def __init__(self, texts: Sequence[str] | ArrowTexts, labels: np.ndarray, source: str) -> None:
        self._column = texts if isinstance(texts, ArrowTexts) else None
        self._texts = None if isinstance(texts, ArrowTexts) else list(texts)
        self.labels = np.asarray(labels, dtype=np.int64)  # 0 = negative, 1 = positive
        self.source = source  # where the reviews were read, in words
        if len(self.labels) != len(texts):
            raise ValueError("texts and labels differ in length")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def texts(self) -> list[str]:
        if self._texts is None:
            assert self._column is not None
            self._texts = self._column.to_pylist()
        return self._texts

    def content_hash(self) -> str:
        """sha256 of the (text, label) rows: the same data gives the same hash wherever read.

        Hashed: b"imdb-v1", the UTF-8 byte length of each text (int64 LE), all texts'
        UTF-8 bytes in order, then one byte per label.
        """
        digest = hashlib.sha256(b"imdb-v1")
        if self._column is not None:
            lengths, pieces = _utf8_pieces(self._column)
        else:
            encoded = [text.encode("utf-8") for text in self.texts]
            lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
            pieces = [memoryview(b"".join(encoded))]
        digest.update(lengths.astype("<i8").tobytes())
        for piece in pieces:
            digest.update(piece)
        digest.update(self.labels.astype(np.uint8).tobytes())
        return digest.hexdigest()

    def fingerprint(self, options: SplitOptions) -> str:
        return self.content_hash()[:12] + options.fingerprint_suffix


def _utf8_pieces(column: ArrowTexts) -> tuple[np.ndarray, list[memoryview]]:
    """Byte length of each string and the UTF-8 bytes, straight from Arrow's buffers."""
    lengths: list[np.ndarray] = []
    pieces: list[memoryview] = []
    for chunk in column.chunks:
        offset_type = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
        _, offsets_buffer, data_buffer = chunk.buffers()
        offsets = np.frombuffer(offsets_buffer, dtype=offset_type)
        offsets = offsets[chunk.offset : chunk.offset + len(chunk) + 1].astype(np.int64)
        lengths.append(np.diff(offsets))
        if data_buffer is not None and len(chunk):
            pieces.append(memoryview(data_buffer)[int(offsets[0]) : int(offsets[-1])])
    empty = np.zeros(0, dtype=np.int64)
    return (np.concatenate(lengths) if lengths else empty), pieces


# --------------------------------------------------------------------------- reading


def load_raw(source: DataSource) -> RawData:
    """Read every labelled review of `source`, train then test."""
    if source.data_dir is None:
        return _load_hub(source.dataset)
    folder = source.data_dir
    name = f"{source.origin} {folder}"
    if not folder.exists():
        raise ImdbError(f"{name}: no such folder")
    if not folder.is_dir():
        raise ImdbError(f"{name}: not a folder")
    try:
        empty = not any(folder.iterdir())
    except OSError as exc:
        raise ImdbError(f"{name}: cannot list the folder ({exc.strerror})") from exc
    if empty:
        raise ImdbError(
            f"{name}: the folder is empty; expected IMDB in the Hub's parquet "
            "layout (plain_text/*.parquet) or the aclImdb/ layout"
        )
    parquet = _find_parquet_layout(folder)
    if parquet is not None:
        return _load_parquet(*parquet)
    acl = _find_aclimdb_layout(folder)
    if acl is not None:
        return _load_aclimdb(acl)
    raise ImdbError(
        f"{name}: neither the Hub's parquet layout (plain_text/train-*.parquet and "
        "test-*.parquet) nor the aclImdb layout (aclImdb/{train,test}/{pos,neg}/*.txt)"
    )


def _find_parquet_layout(folder: Path) -> tuple[Path, list[Path], list[Path]] | None:
    for candidate in (folder / "plain_text", folder):
        if not candidate.is_dir():
            continue
        train = sorted(candidate.glob("train-*.parquet"))
        test = sorted(candidate.glob("test-*.parquet"))
        if train and test:
            return candidate, train, test
        if train or test:
            missing = "test" if train else "train"
            raise ImdbError(
                f"{candidate}: has {'train' if train else 'test'}-*.parquet but no "
                f"{missing}-*.parquet file"
            )
    return None


def _find_aclimdb_layout(folder: Path) -> Path | None:
    for candidate in (folder / "aclImdb", folder):
        parts = [candidate / s / c for s in ("train", "test") for c in ("neg", "pos")]
        if all(p.is_dir() for p in parts):
            return candidate
        if (candidate / "train").is_dir() or (candidate / "test").is_dir():
            missing = next(p for p in parts if not p.is_dir())
            raise ImdbError(f"{candidate}: looks like aclImdb/ but {missing} is missing")
    return None


def _load_parquet(folder: Path, train: list[Path], test: list[Path]) -> RawData:
    texts: list[pa.Array] = []
    labels: list[np.ndarray] = []
    for path in [*train, *test]:
        try:
            with pq.ParquetFile(path) as parquet:
                names = parquet.schema_arrow.names
                missing = [c for c in ("text", "label") if c not in names]
                if missing:
                    raise ImdbError(
                        f"{path}: no {' or '.join(repr(c) for c in missing)} column "
                        f"(columns: {', '.join(names) or 'none'})"
                    )
                table = parquet.read(columns=["text", "label"])
        except ImdbError:
            raise
        except (OSError, pa.ArrowException) as exc:
            raise ImdbError(f"{path}: cannot read as parquet ({_first_line(exc)})") from exc
        file_texts, file_labels = _columns(table, str(path))
        texts.extend(file_texts.chunks)
        labels.append(file_labels)
    return _raw(ArrowTexts(texts), labels, f"parquet {folder}")


def _read_parquet(path: Path, columns: list[str]) -> pa.Table:
    # ParquetFile, not pq.read_table: the latter imports pyarrow.dataset and pandas (seconds).
    with pq.ParquetFile(path) as parquet:
        return parquet.read(columns=columns)


def _int64(column: pa.ChunkedArray) -> np.ndarray:
    # Not column.to_numpy(): pyarrow imports pandas for that (a second or more).
    return np.asarray(column.to_pylist(), dtype=np.int64)


def _columns(table: pa.Table, where: str) -> tuple[pa.ChunkedArray, np.ndarray]:
    text_col, label_col = table.column("text"), table.column("label")
    if not (pa.types.is_string(text_col.type) or pa.types.is_large_string(text_col.type)):
        raise ImdbError(f"{where}: column 'text' must hold strings (got {text_col.type})")
    if not (pa.types.is_integer(label_col.type) or pa.types.is_boolean(label_col.type)):
        raise ImdbError(f"{where}: column 'label' must hold integers 0/1 (got {label_col.type})")
    if text_col.null_count or label_col.null_count:
        raise ImdbError(f"{where}: empty (null) values in column 'text' or 'label'")
    labels = _int64(label_col)
    bad = np.unique(labels[(labels != 0) & (labels != 1)])
    if bad.size:
        shown = ", ".join(str(v) for v in bad[:5].tolist())
        raise ImdbError(f"{where}: labels must be 0 (negative) or 1 (positive); found {shown}")
    return text_col, labels


def _load_aclimdb(folder: Path) -> RawData:
    texts: list[str] = []
    labels: list[np.ndarray] = []
    for split in ("train", "test"):
        for label, category in ((0, "neg"), (1, "pos")):
            files = sorted((folder / split / category).glob("*.txt"))
            for path in files:
                try:
                    texts.append(path.read_bytes().decode("utf-8"))
                except UnicodeDecodeError as exc:
                    raise ImdbError(f"{path}: not valid UTF-8 (byte {exc.start})") from exc
                except OSError as exc:
                    raise ImdbError(f"{path}: cannot read ({exc.strerror})") from exc
            labels.append(np.full(len(files), label, dtype=np.int64))
    if not texts:
        raise ImdbError(f"{folder}: no review files (*.txt) in {{train,test}}/{{pos,neg}}")
    return _raw(texts, labels, f"aclImdb {folder}")


def _load_hub(dataset: str) -> RawData:
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - a dependency
        raise ImdbError("reading from the Hub needs the `datasets` package") from exc
    try:
        loaded = datasets.load_dataset(dataset)
    except ConnectionError as exc:
        raise ImdbError(
            f"cannot reach the Hugging Face Hub to download '{dataset}' ({_first_line(exc)}); "
            f"use --data-dir PATH or set {DATA_DIR_ENV} to a local copy of IMDB"
        ) from exc
    except Exception as exc:
        raise ImdbError(
            f"cannot load dataset '{dataset}' from the Hub ({_first_line(exc)}); "
            f"use --data-dir PATH or set {DATA_DIR_ENV} to a local copy of IMDB"
        ) from exc
    missing = [s for s in ("train", "test") if s not in loaded]
    if missing:
        raise ImdbError(f"dataset '{dataset}' has no {' or '.join(missing)} split")
    texts: list[pa.Array] = []
    labels: list[np.ndarray] = []
    for split in ("train", "test"):
        part = loaded[split]
        absent = [c for c in ("text", "label") if c not in part.column_names]
        if absent:
            raise ImdbError(f"dataset '{dataset}' split {split}: no {' or '.join(absent)} column")
        table = part.select_columns(["text", "label"]).with_format("arrow")[:]
        split_texts, split_labels = _columns(table, f"dataset '{dataset}' split {split}")
        texts.extend(split_texts.chunks)
        labels.append(split_labels)
    return _raw(ArrowTexts(texts), labels, f"hub {dataset}")


def _raw(texts: list[str] | ArrowTexts, labels: list[np.ndarray], source: str) -> RawData:
    if not len(texts):
        raise ImdbError(f"{source}: no reviews")
    return RawData(texts, np.concatenate(labels).astype(np.int64), source)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --------------------------------------------------------------------------- splitting


@dataclass(frozen=True)
class SplitIds:
    """Review ids per split (in split order) and what deduplication did."""

    ids: dict[str, np.ndarray]
    duplicates_dropped: int
    duplicate_copies: int  # extra copies of a text in the loaded data


def count_duplicates(texts: Sequence[str]) -> int:
    """Extra copies of a text (418 on the full IMDB)."""
    return len(texts) - len(set(texts))


def make_split(raw: RawData, options: SplitOptions) -> SplitIds:
    """Deduplicate (unless keep_duplicates), sample --limit, split 80/10/10 by seed.

    No text is in two splits: without duplicates this is automatic; with them, all copies
    of a text form one group and a group goes to one split.
    """
    options.check()
    first: dict[str, int] = {}
    groups: dict[int, list[int]] = {}  # first id -> ids of all copies
    for review_id, text in enumerate(raw.texts):
        head = first.setdefault(text, review_id)
        groups.setdefault(head, []).append(review_id)
    copies = len(raw.texts) - len(first)
    candidates = (
        np.arange(len(raw.texts), dtype=np.int64)
        if options.keep_duplicates
        else np.fromiter(groups, dtype=np.int64, count=len(groups))
    )
    rng = np.random.default_rng(options.seed)
    if options.limit is not None:
        if options.limit > len(candidates):
            raise ImdbError(
                f"--limit {options.limit} is more than the {len(candidates)} reviews available"
            )
        candidates = np.sort(rng.choice(candidates, size=options.limit, replace=False))
    if len(candidates) < MIN_LIMIT:
        raise ImdbError(f"{raw.source}: only {len(candidates)} reviews; need at least {MIN_LIMIT}")
    n = len(candidates)
    n_val, n_test = round(n * VAL_FRACTION), round(n * TEST_FRACTION)
    targets = {"train": n - n_val - n_test, "val": n_val, "test": n_test}
    ids: dict[str, np.ndarray] = {}
    if not options.keep_duplicates:
        shuffled = candidates[rng.permutation(n)]
        bounds = np.cumsum([0, targets["train"], targets["val"], targets["test"]])
        for i, split in enumerate(SPLITS):
            ids[split] = shuffled[bounds[i] : bounds[i + 1]]
        return SplitIds(ids, copies, copies)
    by_text: dict[str, list[int]] = {}
    for review_id in candidates.tolist():
        by_text.setdefault(raw.texts[review_id], []).append(review_id)
    groups_in_sample = list(by_text.values())
    ordered = [groups_in_sample[i] for i in rng.permutation(len(groups_in_sample))]
    start = 0
    for split in SPLITS:
        taken: list[int] = []
        # Whole groups only, so copies stay together; the last split takes what is left.
        while start < len(ordered) and (split == "test" or len(taken) < targets[split]):
            taken.extend(ordered[start])
            start += 1
        ids[split] = np.asarray(taken, dtype=np.int64)
    return SplitIds(ids, 0, copies)


# --------------------------------------------------------------------------- tokenizers


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
            rows = [self.prefix + self._cut(list(ids)) + self.suffix for ids in bare]
        input_ids = np.full((len(texts), self.max_length), self.pad_id, dtype=np.int32)
        lengths = np.empty(len(texts), dtype=np.int32)
        for i, row in enumerate(rows):
            input_ids[i, : len(row)] = row
            lengths[i] = len(row)
        return input_ids, lengths

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


# --------------------------------------------------------------------------- cache entries


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


@dataclass(frozen=True)
class PrepareResult:
    data_fingerprint: str
    source: str
    split_dir: Path
    split_manifest: dict[str, Any]
    split_reused: bool
    duplicates_dropped: int
    caches: dict[str, TokenizedCache]  # model key -> its tokenized cache

    def models_by_cache(self) -> dict[Path, list[str]]:
        users: dict[Path, list[str]] = {}
        for key, cache in self.caches.items():
            users.setdefault(cache.path, []).append(key)
        return users


def split_dir_name(seed: int) -> str:
    return f"split-seed{seed}"


def tokenized_dir_name(key: str, max_length: int, seed: int, truncation: str) -> str:
    suffix = {"head": "", "tail": "-tail", "head+tail": "-headtail"}[truncation]
    return f"{key}-len{max_length}-seed{seed}{suffix}"


def _array_file(split: str, name: str) -> str:
    return f"{split}_{name}.npy"


def open_cache(path: Path) -> TokenizedCache | None:
    """The tokenized cache entry at `path`, or None when there is no complete one there."""
    manifest = _read_manifest(path)
    if manifest is None or manifest.get("kind") != "tokenized":
        return None
    return TokenizedCache(path, manifest, reused=True)


def _read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _matches(manifest: dict[str, Any], expected: dict[str, Any]) -> str | None:
    """None when every expected key has the expected value; else what differs."""
    for key, value in expected.items():
        if manifest.get(key) != value:
            return f"{key} is {manifest.get(key)!r}, expected {value!r}"
    return None


def _check_split_entry(path: Path, expected: dict[str, Any]) -> dict[str, Any] | None:
    manifest = _read_manifest(path)
    if manifest is None:
        debug(f"{path}: no readable manifest")
        return None
    why = _matches(manifest, expected)
    try:
        sizes = {s: int(manifest["sizes"][s]) for s in SPLITS}
        for split in SPLITS:
            rows = pq.read_metadata(path / f"{split}.parquet").num_rows
            if rows != sizes[split]:
                why = why or f"{split}.parquet has {rows} rows, manifest says {sizes[split]}"
    except (OSError, KeyError, TypeError, ValueError, pa.ArrowException) as exc:
        why = why or f"unreadable ({_first_line(exc)})"
    if why:
        debug(f"{path}: not used: {why}")
        return None
    return manifest


def _check_tokenized_entry(path: Path, expected: dict[str, Any]) -> dict[str, Any] | None:
    manifest = _read_manifest(path)
    if manifest is None:
        debug(f"{path}: no readable manifest")
        return None
    why = _matches(manifest, expected)
    try:
        max_length = int(manifest["max_length"])
        for split in SPLITS:
            n = int(manifest["sizes"][split])
            for name, (dtype, wide) in ARRAYS.items():
                array = np.load(path / _array_file(split, name), mmap_mode="r")
                shape = (n, max_length) if wide else (n,)
                if array.shape != shape or array.dtype != dtype:
                    why = why or f"{_array_file(split, name)} is {array.dtype}{array.shape}"
    except (OSError, KeyError, TypeError, ValueError) as exc:
        why = why or f"unreadable ({_first_line(exc)})"
    if why:
        debug(f"{path}: not used: {why}")
        return None
    return manifest


def clean_stale_temps(parent: Path) -> list[Path]:
    """Remove temporary entries left by runs that died (SIGKILL, power cut)."""
    removed: list[Path] = []
    if not parent.is_dir():
        return removed
    for entry in parent.iterdir():
        if not entry.name.startswith(TMP_PREFIX):
            continue
        parts = entry.name.rsplit("-", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            continue
        if not pid_alive(int(parts[1])):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
            debug(f"removed {entry} (left by a run that died)")
    return removed


def _temp_dir(final: Path) -> Path:
    tmp = final.parent / f"{TMP_PREFIX}{final.name}-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir(parents=True)
    return tmp


def _discard(path: Path) -> None:
    """Move a bad entry out of the way (atomically), then delete it."""
    aside = path.parent / f"{TMP_PREFIX}{path.name}-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    shutil.rmtree(aside, ignore_errors=True)


def _publish(
    tmp: Path,
    final: Path,
    manifest: dict[str, Any],
    check: Callable[[Path], dict[str, Any] | None],
) -> tuple[dict[str, Any], bool]:
    """Rename `tmp` to `final`; if another run got there first, keep its valid entry.

    Returns the manifest of the entry now at `final` and whether it is ours.
    """
    for _ in range(3):
        try:
            os.rename(tmp, final)
            return manifest, True
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
        theirs = check(final)
        if theirs is not None:
            debug(f"{final}: another run finished first; using its entry")
            shutil.rmtree(tmp, ignore_errors=True)
            return theirs, False
        _discard(final)
    raise ImdbError(f"{final}: cannot replace an invalid cache entry; delete it and rerun")


def _write_json(path: Path, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, ensure_ascii=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


def _save_array(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, array)
        f.flush()
        os.fsync(f.fileno())


def _build_entry(
    final: Path,
    check: Callable[[Path], dict[str, Any] | None],
    fill: Callable[[Path], dict[str, Any]],
) -> tuple[dict[str, Any], bool]:
    """Build into a temp folder with `fill` (returns the manifest), write it last, publish."""
    if final.exists():
        theirs = check(final)  # another run may have just finished it
        if theirs is not None:
            return theirs, False
        warn(f"ignoring the incomplete or outdated cache entry {final}; rebuilding it")
        _discard(final)
    tmp = _temp_dir(final)
    try:
        manifest = fill(tmp)
        _write_json(tmp / "manifest.json", manifest)
        return _publish(tmp, final, manifest, check)
    except OSError as exc:
        raise ImdbError(f"cannot write the cache entry {final} ({exc.strerror or exc})") from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _ids_sha256(ids: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(ids, dtype="<i8").tobytes()).hexdigest()


def _balance(labels: np.ndarray) -> dict[str, int]:
    positive = int(np.count_nonzero(labels == 1))
    return {"negative": int(len(labels) - positive), "positive": positive}


# --------------------------------------------------------------------------- split level


def _split_expected(fingerprint: str, options: SplitOptions) -> dict[str, Any]:
    return {
        "format": FORMAT_VERSION,
        "kind": "split",
        "data_fingerprint": fingerprint,
        "seed": options.seed,
        "limit": options.limit,
        "keep_duplicates": options.keep_duplicates,
    }


def _ensure_split(
    raw: RawData, fingerprint: str, options: SplitOptions, entry_dir: Path
) -> tuple[Path, dict[str, Any], bool]:
    final = entry_dir / split_dir_name(options.seed)
    expected = _split_expected(fingerprint, options)

    def check(path: Path) -> dict[str, Any] | None:
        return _check_split_entry(path, expected)

    manifest = check(final)
    if manifest is not None:
        return final, manifest, True

    def fill(tmp: Path) -> dict[str, Any]:
        split = make_split(raw, options)
        labels = {s: raw.labels[split.ids[s]] for s in SPLITS}
        for s in SPLITS:
            ids = split.ids[s]
            table = pa.table(
                {
                    "review_id": pa.array(ids, type=pa.int64()),
                    "text": pa.array([raw.texts[i] for i in ids.tolist()], type=pa.string()),
                    "label": pa.array(labels[s], type=pa.int64()),
                }
            )
            pq.write_table(table, tmp / f"{s}.parquet")
        return {
            **expected,
            "source": raw.source,
            "reviews_loaded": len(raw),
            "duplicate_copies": split.duplicate_copies,
            "duplicates_dropped": split.duplicates_dropped,
            "sizes": {s: len(split.ids[s]) for s in SPLITS},
            "label_balance": {s: _balance(labels[s]) for s in SPLITS},
            "test_review_ids_sha256": _ids_sha256(split.ids["test"]),
            "created_at": _now(),
            "files": {s: f"{s}.parquet" for s in SPLITS},
        }

    manifest, _ = _build_entry(final, check, fill)
    return final, manifest, False


def _read_split_table(split_dir: Path, split: str) -> pa.Table:
    path = split_dir / f"{split}.parquet"
    try:
        return _read_parquet(path, ["review_id", "text", "label"])
    except (OSError, pa.ArrowException) as exc:
        raise ImdbError(f"{path}: cannot read ({_first_line(exc)}); rerun `imdb prepare`") from exc


# --------------------------------------------------------------------------- tokenized level


def _tokenized_expected(
    fingerprint: str, key: str, options: SplitOptions, max_length: int, truncation: str
) -> dict[str, Any]:
    return {
        "format": FORMAT_VERSION,
        "kind": "tokenized",
        "data_fingerprint": fingerprint,
        "tokenizer_key": key,
        "max_length": max_length,
        "truncation": truncation,
        "seed": options.seed,
        "limit": options.limit,
        "keep_duplicates": options.keep_duplicates,
    }


@contextlib.contextmanager
def _tokenizer_threads() -> Iterator[None]:
    """Let the fast tokenizer use its own threads (it reads the variable on each call).

    An explicit TOKENIZERS_PARALLELISM is kept: the user's choice, or `false` set by the
    tokenizers library itself in a forked child, where its thread pool would deadlock.
    """
    if PARALLELISM_ENV in os.environ:
        yield
        return
    os.environ[PARALLELISM_ENV] = "true"
    try:
        yield
    finally:
        os.environ.pop(PARALLELISM_ENV, None)


def _batches(n: int, size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, size):
        yield start, min(start + size, n)


def _tokenize_into(
    tmp: Path,
    split_dir: Path,
    encoder: Encoder,
    on_batch: Callable[[int], None],
) -> dict[str, Any]:
    """Write the arrays of every split into `tmp`; return the manifest's per-split facts."""
    sizes: dict[str, int] = {}
    balance: dict[str, dict[str, int]] = {}
    full_fraction: dict[str, float] = {}
    mean_length: dict[str, float] = {}
    test_sha = ""
    for split in SPLITS:
        table = _read_split_table(split_dir, split)
        texts = table.column("text").to_pylist()
        review_ids = _int64(table.column("review_id"))
        labels = _int64(table.column("label"))
        del table
        n = len(texts)
        input_ids = np.empty((n, encoder.max_length), dtype=np.int32)
        lengths = np.empty(n, dtype=np.int32)
        for start, stop in _batches(n, TOKENIZE_BATCH):
            ids, lens = encoder.encode(texts[start:stop])
            input_ids[start:stop] = ids
            lengths[start:stop] = lens
            on_batch(stop - start)
        full = int(np.count_nonzero(lengths == encoder.max_length))  # cut (or exactly fit)
        arrays = {
            "input_ids": input_ids,
            "lengths": lengths,
            "labels": labels,
            "review_ids": review_ids,
        }
        for name, array in arrays.items():
            _save_array(tmp / _array_file(split, name), array)
        sizes[split] = n
        balance[split] = _balance(labels)
        full_fraction[split] = round(full / n, 4) if n else 0.0
        mean_length[split] = round(float(lengths.mean()), 2) if n else 0.0
        if split == "test":
            test_sha = _ids_sha256(review_ids)
    return {
        "sizes": sizes,
        "label_balance": balance,
        "full_length_fraction": full_fraction,
        "mean_length": mean_length,
        "test_review_ids_sha256": test_sha,
        "files": {
            _array_file(s, name): {
                "dtype": np.dtype(dtype).name,
                "shape": [sizes[s], encoder.max_length] if wide else [sizes[s]],
            }
            for s in SPLITS
            for name, (dtype, wide) in ARRAYS.items()
        },
    }


# --------------------------------------------------------------------------- memo
#
# Loading a tokenizer means importing transformers (and torch): seconds. A cache hit should
# not pay that, so the tokenizer key computed on a miss is remembered against a hash of the
# tokenizer's files (plus library versions). Same for each model's maximum positions.


def _versions() -> str:
    found = []
    for name in ("transformers", "tokenizers"):
        try:
            found.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name}=none")
    return ",".join(found)


def _local_folder(source: str) -> Path | None:
    """The folder a tokenizer or model source loads from, if already on this machine."""
    if source.startswith(registry.PACKAGE_PREFIX):
        try:
            return Path(registry.resolve_source(source))
        except ImdbError:
            return None
    if Path(source).is_dir():
        return Path(source)
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(source, "tokenizer_config.json")
    except Exception:
        return None
    return Path(found).parent if isinstance(found, str) else None


def _files_digest(folder: Path, names: frozenset[str], *extra: str) -> str | None:
    digest = hashlib.sha256("\0".join([*extra, _versions()]).encode("utf-8"))
    found = False
    try:
        for path in sorted(folder.iterdir()):
            if path.name in names and path.is_file():
                digest.update(path.name.encode("utf-8") + b"\0" + path.read_bytes())
                found = True
    except OSError:
        return None
    return digest.hexdigest() if found else None


def _tokenizer_digest(spec: ModelSpec) -> str | None:
    folder = _local_folder(spec.tokenizer)
    if folder is None:
        return None
    return _files_digest(folder, TOKENIZER_FILES, "tokenizer", spec.tokenizer)


def _spec_digest(spec: ModelSpec) -> str | None:
    try:
        text = spec.path.read_text(encoding="utf-8")
    except OSError:
        return None
    digest = hashlib.sha256(f"{text}\0{_versions()}".encode())
    if spec.pretrained is not None and registry.is_local(spec.pretrained):
        folder = _local_folder(spec.pretrained)
        config = folder / "config.json" if folder is not None else None
        if config is None or not config.is_file():
            return None
        digest.update(config.read_bytes())
    return digest.hexdigest()


class _Memo:
    def __init__(self, workspace: Workspace) -> None:
        self.path = workspace.cache / MEMO_FILE
        self.data: dict[str, dict[str, Any]] = {"tokenizers": {}, "max_positions": {}}
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
            if isinstance(loaded, dict) and loaded.get("format") == FORMAT_VERSION:
                for section in self.data:
                    if isinstance(loaded.get(section), dict):
                        self.data[section] = loaded[section]
        except (OSError, ValueError):
            pass
        self.changed = False

    def get(self, section: str, digest: str | None) -> Any:
        return None if digest is None else self.data[section].get(digest)

    def put(self, section: str, digest: str | None, value: Any) -> None:
        if digest is not None and self.data[section].get(digest) != value:
            self.data[section][digest] = value
            self.changed = True

    def save(self) -> None:
        if not self.changed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(
                f"{TMP_PREFIX}{MEMO_FILE}-{os.getpid()}-{secrets.token_hex(4)}"
            )
            _write_json(tmp, {"format": FORMAT_VERSION, **self.data})
            os.replace(tmp, self.path)
            self.changed = False
        except OSError as exc:  # only a speed-up: never fail a run for it
            debug(f"could not write {self.path}: {exc}")


# --------------------------------------------------------------------------- prepare


def _check_options(options: SplitOptions, max_length: int, truncation: str) -> None:
    options.check()
    if truncation not in TRUNCATIONS:
        raise ImdbError(
            f"--truncation must be one of {', '.join(TRUNCATIONS)} (got {truncation!r})"
        )
    if max_length < MIN_MAX_LENGTH:
        raise ImdbError(f"--max-length must be at least {MIN_MAX_LENGTH} (got {max_length})")


def _check_max_length(spec: ModelSpec, max_length: int, memo: _Memo) -> None:
    digest = _spec_digest(spec)
    limit = memo.get("max_positions", digest)
    if not isinstance(limit, int):
        limit = registry.max_positions(spec)
        memo.put("max_positions", digest, limit)
    if max_length > limit:
        raise ImdbError(
            f"--max-length {max_length} is more than model '{spec.key}' accepts "
            f"(its maximum is {limit} positions)"
        )


def prepare(
    workspace: Workspace,
    specs: list[ModelSpec],
    source: DataSource,
    options: SplitOptions,
    max_length: int,
    truncation: str = "head",
) -> PrepareResult:
    """Read, split and tokenize IMDB for `specs`, reusing every valid cache entry."""
    _check_options(options, max_length, truncation)
    if not specs:
        raise ImdbError("--models: give at least one model key")
    memo = _Memo(workspace)
    tokenizers: dict[str, PreTrainedTokenizerBase] = {}
    keys: dict[str, str] = {}  # model key -> tokenizer key
    sources: dict[str, list[str]] = {}  # tokenizer key -> tokenizer source strings
    for spec in specs:
        _check_max_length(spec, max_length, memo)
        digest = _tokenizer_digest(spec)
        key = memo.get("tokenizers", digest)
        if not isinstance(key, str):
            tokenizer = registry.build_tokenizer(spec)
            key = tokenizer_key(tokenizer)
            tokenizers.setdefault(key, tokenizer)
            memo.put("tokenizers", digest, key)
        keys[spec.key] = key
        if spec.tokenizer not in sources.setdefault(key, []):
            sources[key].append(spec.tokenizer)
    memo.save()

    started = time.perf_counter()
    raw = load_raw(source)
    fingerprint = raw.fingerprint(options)
    info(
        f"read {len(raw):,} reviews from {raw.source} in "
        f"{time.perf_counter() - started:.1f}s (data fingerprint {fingerprint})"
    )

    entry_dir = workspace.cache / fingerprint
    try:
        entry_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImdbError(f"cannot create the cache folder {entry_dir} ({exc.strerror})") from exc
    clean_stale_temps(workspace.cache)  # a memo file being written when a run died
    clean_stale_temps(entry_dir)

    split_dir, split_manifest, split_reused = _ensure_split(raw, fingerprint, options, entry_dir)
    dropped = int(split_manifest["duplicates_dropped"])
    copies = int(split_manifest.get("duplicate_copies", dropped))
    if split_reused:
        info(f"reusing the split in {split_dir}")
    else:
        info(f"split written to {split_dir}")
    if options.keep_duplicates:
        info(
            f"kept duplicate texts (--keep-duplicates; {copies:,} extra copies in the data "
            "read); all copies of a text go to the same split"
        )
    else:
        info(f"dropped {dropped:,} duplicate review texts (kept the first of each)")

    caches: dict[str, TokenizedCache] = {}
    by_key: dict[str, list[ModelSpec]] = {}
    for spec in specs:
        by_key.setdefault(keys[spec.key], []).append(spec)
    for key, users in by_key.items():
        cache = _ensure_tokenized(
            key=key,
            users=users,
            tokenizers=tokenizers,
            memo=memo,
            sources=sources[key],
            fingerprint=fingerprint,
            source_text=raw.source,
            options=options,
            max_length=max_length,
            truncation=truncation,
            entry_dir=entry_dir,
            split_dir=split_dir,
            split_manifest=split_manifest,
        )
        for spec in users:
            caches[spec.key] = cache
    memo.save()
    return PrepareResult(
        data_fingerprint=fingerprint,
        source=raw.source,
        split_dir=split_dir,
        split_manifest=split_manifest,
        split_reused=split_reused,
        duplicates_dropped=dropped,
        caches=caches,
    )


def _ensure_tokenized(
    *,
    key: str,
    users: list[ModelSpec],
    tokenizers: dict[str, PreTrainedTokenizerBase],
    memo: _Memo,
    sources: list[str],
    fingerprint: str,
    source_text: str,
    options: SplitOptions,
    max_length: int,
    truncation: str,
    entry_dir: Path,
    split_dir: Path,
    split_manifest: dict[str, Any],
) -> TokenizedCache:
    names = ", ".join(s.key for s in users)
    final = entry_dir / tokenized_dir_name(key, max_length, options.seed, truncation)
    expected = _tokenized_expected(fingerprint, key, options, max_length, truncation)
    expected["sizes"] = split_manifest["sizes"]
    expected["test_review_ids_sha256"] = split_manifest["test_review_ids_sha256"]

    def check(path: Path) -> dict[str, Any] | None:
        return _check_tokenized_entry(path, expected)

    manifest = check(final)
    if manifest is not None:
        info(f"reusing tokenized {names}: {final}")
        return TokenizedCache(final, manifest, reused=True)

    tokenizer = tokenizers.get(key)
    if tokenizer is None:
        tokenizer = registry.build_tokenizer(users[0])
        actual = tokenizer_key(tokenizer)
        memo.put("tokenizers", _tokenizer_digest(users[0]), actual)
        if actual != key:  # the memo was stale: tokenize under the real key
            debug(f"tokenizer key of '{users[0].key}' is {actual}, memo said {key}")
            return _ensure_tokenized(
                key=actual,
                users=users,
                tokenizers={actual: tokenizer},
                memo=memo,
                sources=sources,
                fingerprint=fingerprint,
                source_text=source_text,
                options=options,
                max_length=max_length,
                truncation=truncation,
                entry_dir=entry_dir,
                split_dir=split_dir,
                split_manifest=split_manifest,
            )
    if tokenizer.pad_token_id is None:
        raise ImdbError(
            f"model '{users[0].key}': tokenizer '{users[0].tokenizer}' has no pad token"
        )
    encoder = Encoder(tokenizer, max_length, truncation)
    total = sum(int(n) for n in split_manifest["sizes"].values())

    def fill(tmp: Path) -> dict[str, Any]:
        started, cpu_started = time.perf_counter(), time.process_time()
        with progress() as bar, _tokenizer_threads():
            task = bar.add_task(f"tokenizing for {names}", total=total)
            facts = _tokenize_into(tmp, split_dir, encoder, lambda n: bar.advance(task, n))
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started  # all threads of this process
        return {
            **expected,
            **facts,
            "source": source_text,
            "tokenizer_class": type(tokenizer).__name__,
            "tokenizer_sources": sources,
            "models": [s.key for s in users],
            "duplicates_dropped": split_manifest["duplicates_dropped"],
            "pad_token_id": encoder.pad_id,
            "special_prefix": encoder.prefix,
            "special_suffix": encoder.suffix,
            "tokenize_seconds": round(seconds, 2),
            "tokenize_cpu_seconds": round(cpu_seconds, 2),
            "created_at": _now(),
        }

    manifest, ours = _build_entry(final, check, fill)
    if ours:
        info(f"tokenized {total:,} reviews for {names} in {manifest['tokenize_seconds']}s: {final}")
    else:
        info(f"another run tokenized {names} first; using {final}")
    return TokenizedCache(final, manifest, reused=not ours)


# --------------------------------------------------------------------------- readers


_NAME = re.compile(
    r"^(?P<key>.+)-len(?P<length>\d+)-seed(?P<seed>\d+)(?P<suffix>-tail|-headtail)?$"
)


def find_tokenized_cache(
    workspace: Workspace,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    truncation: str = "head",
    *,
    seed: int | None = None,
    model: str | None = None,
    fingerprint: str | None = None,
) -> TokenizedCache:
    """The most recently created valid entry for this tokenizer, length and truncation
    (of the data set `fingerprint` when given: `imdb train --data`)."""
    if truncation not in TRUNCATIONS:
        raise ImdbError(
            f"--truncation must be one of {', '.join(TRUNCATIONS)} (got {truncation!r})"
        )
    key = tokenizer_key(tokenizer)
    suffix = {"head": None, "tail": "-tail", "head+tail": "-headtail"}[truncation]
    found: list[TokenizedCache] = []
    if workspace.cache.is_dir():
        for entry in workspace.cache.glob(f"*/{key}-len{max_length}-seed*"):
            match = _NAME.match(entry.name)
            if match is None or match["key"] != key or match["suffix"] != suffix:
                continue
            if seed is not None and int(match["seed"]) != seed:
                continue
            if fingerprint is not None and entry.parent.name != fingerprint:
                continue
            manifest = _check_tokenized_entry(
                entry,
                {
                    "format": FORMAT_VERSION,
                    "kind": "tokenized",
                    "tokenizer_key": key,
                    "max_length": max_length,
                    "truncation": truncation,
                },
            )
            if manifest is None or not (entry.parent / split_dir_name(manifest["seed"])).is_dir():
                continue
            found.append(TokenizedCache(entry, manifest, reused=True))
    if not found:
        flags = f"--models {model or 'MODEL'} --max-length {max_length}"
        if truncation != "head":
            flags += f" --truncation {truncation}"
        if seed is not None and seed != 42:
            flags += f" --seed {seed}"
        of_data = f" of data set {fingerprint}" if fingerprint is not None else ""
        raise ImdbError(
            f"no tokenized data{of_data} for "
            f"{'model ' + repr(model) if model else 'this tokenizer'} "
            f"at max length {max_length} ({truncation} truncation) in {workspace.cache}; "
            f"run `imdb prepare {flags}` first"
        )
    newest = max(found, key=lambda c: str(c.manifest.get("created_at", "")))
    others = {c.path.parent.name for c in found} - {newest.path.parent.name}
    if others:  # e.g. a quick `prepare --limit` after the full data: say which one is used
        total = sum(newest.sizes().values())
        warn(
            f"{len(others) + 1} prepared data sets fit; using the newest, "
            f"{newest.path.parent.name} ({total:,} reviews, prepared "
            f"{newest.manifest.get('created_at', '?')}); the others: {', '.join(sorted(others))}"
            " (choose one with --data)"
        )
    return newest


def load_split(cache: TokenizedCache, split: str, *, mmap: bool = True) -> TokenizedSplit:
    """The arrays of one split (memory-mapped read-only unless mmap=False)."""
    if split not in SPLITS:
        raise ImdbError(f"unknown split {split!r}; splits: {', '.join(SPLITS)}")
    mode: Literal["r"] | None = "r" if mmap else None
    arrays: dict[str, np.ndarray] = {}
    for name in ARRAYS:
        path = cache.path / _array_file(split, name)
        try:
            arrays[name] = np.load(path, mmap_mode=mode)
        except (OSError, ValueError) as exc:
            raise ImdbError(
                f"{path}: cannot read ({_first_line(exc)}); rerun `imdb prepare`"
            ) from exc
    return TokenizedSplit(
        review_ids=arrays["review_ids"],
        input_ids=arrays["input_ids"],
        lengths=arrays["lengths"],
        labels=arrays["labels"],
        pad_token_id=cache.pad_token_id,
    )


def load_texts(cache: TokenizedCache, split: str) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Review ids, texts and labels of one split, in the same order as `load_split`."""
    if split not in SPLITS:
        raise ImdbError(f"unknown split {split!r}; splits: {', '.join(SPLITS)}")
    table = _read_split_table(cache.split_dir, split)
    review_ids = _int64(table.column("review_id"))
    expected = np.load(cache.path / _array_file(split, "review_ids"), mmap_mode="r")
    if not np.array_equal(review_ids, expected):
        raise ImdbError(
            f"{cache.split_dir}: {split} reviews do not match {cache.path}; rerun `imdb prepare`"
        )
    return (
        review_ids,
        table.column("text").to_pylist(),
        _int64(table.column("label")),
    )
