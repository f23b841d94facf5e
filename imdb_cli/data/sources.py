"""Reading IMDB's layouts into raw rows: the Hub, a folder of parquet files, or aclImdb/.

Every labelled review is read, train then test; a review's id is its index in that
concatenation. Texts read from parquet or the Hub stay Arrow columns until needed, so a
cache hit hashes their buffers without building 50k Python strings.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from imdb_cli import registry
from imdb_cli.errors import ImdbError, first_line

if TYPE_CHECKING:
    from imdb_cli.data.split import SplitOptions

DEFAULT_DATASET = "stanfordnlp/imdb"
DATA_DIR_ENV = "IMDB_DATA_DIR"


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
            raise ImdbError(f"{path}: cannot read as parquet ({first_line(exc)})") from exc
        file_texts, file_labels = _columns(table, str(path))
        texts.extend(file_texts.chunks)
        labels.append(file_labels)
    return _raw(ArrowTexts(texts), labels, f"parquet {folder}")


def read_parquet(path: Path, columns: list[str]) -> pa.Table:
    # ParquetFile, not pq.read_table: the latter imports pyarrow.dataset and pandas (seconds).
    with pq.ParquetFile(path) as parquet:
        return parquet.read(columns=columns)


def int64_column(column: pa.ChunkedArray) -> np.ndarray:
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
    labels = int64_column(label_col)
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
    # Without a network the Hub client retries for half a minute; one quick connection
    # attempt decides first (offline, a data set already in the local HF cache still loads).
    registry.go_offline_if_hub_unreachable()
    import datasets  # seconds to import (pandas and more): only when the Hub is read

    if os.environ.get("HF_HUB_OFFLINE") == "1":  # datasets read the variable at its import
        datasets.config.HF_HUB_OFFLINE = True

    try:
        loaded = datasets.load_dataset(dataset)
    except ConnectionError as exc:
        raise ImdbError(
            f"cannot reach the Hugging Face Hub to download '{dataset}' ({first_line(exc)}); "
            f"use --data-dir PATH or set {DATA_DIR_ENV} to a local copy of IMDB"
        ) from exc
    except Exception as exc:
        raise ImdbError(
            f"cannot load dataset '{dataset}' from the Hub ({first_line(exc)}); "
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
