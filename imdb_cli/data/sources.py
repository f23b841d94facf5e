"""Reading a data set's rows: from the Hub, a local folder or file of parquet, CSV or JSONL
files, or the aclImdb layout ({split}/{label}/*.txt), into texts and class ids.

Rows are read split by split in the entry's order (`splits`; each split's files by name),
so IMDB reads train then test, as the study did; a review's id is its index in that order.
Texts read from parquet, CSV, JSONL or the Hub stay Arrow columns until needed, so a cache
hit hashes their buffers without building 50k Python strings.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from imdb_cli import registry
from imdb_cli.console import debug, warn
from imdb_cli.data.entry import (
    DATA_SUFFIXES,
    DEFAULT_DATASET,
    GIVEN_NAMES,
    LEGACY_LABELS,
    STUDY_FRACTIONS,
    DatasetEntry,
)
from imdb_cli.errors import ImdbError, first_line

if TYPE_CHECKING:
    from imdb_cli.data.split import SplitOptions

SPLIT_SEPARATORS = ("-", "_", ".")


@dataclass(frozen=True)
class DataSource:
    """Where an entry's rows are read: its own `source`, or a local copy of it (`--data-dir`,
    or the variable the entry names in `local_copy_env`: IMDB_DATA_DIR for IMDB)."""

    entry: DatasetEntry
    local_copy: Path | None = None
    # How the user named the local copy, for error messages.
    origin: str = field(default="--data-dir", compare=False)

    @classmethod
    def of(cls, entry: DatasetEntry, data_dir: Path | None = None) -> DataSource:
        """`--data-dir` as given; else the entry's local-copy variable when set."""
        if data_dir is not None:
            return cls(entry, data_dir)
        env = entry.local_copy_env
        value = os.environ.get(env, "").strip() if env else ""
        if env and value:
            return cls(entry, Path(value), origin=env)
        return cls(entry)

    def describe(self) -> str:
        if self.local_copy is not None:
            return str(self.local_copy)
        if self.entry.is_hub:
            return f"hub:{self.entry.source}"
        return str(self.entry.source_path)


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
    """All labelled texts of a data set, in reading order; review id = index.

    `texts` may be given as a list or as an Arrow string column (read from parquet): a
    cache hit only hashes the column's buffers and never builds 50k Python strings.
    `given` (for `split: given`) is the split each row comes from: 0 train, 1 val, 2 test.
    """

    def __init__(
        self,
        texts: Sequence[str] | ArrowTexts,
        labels: np.ndarray,
        source: str,
        *,
        dataset: str = DEFAULT_DATASET,
        label_names: Sequence[str] = LEGACY_LABELS,
        given: np.ndarray | None = None,
    ) -> None:
        self._column = texts if isinstance(texts, ArrowTexts) else None
        self._texts = None if isinstance(texts, ArrowTexts) else list(texts)
        self.labels = np.asarray(labels, dtype=np.int64)  # class ids, into label_names
        self.source = source  # where the rows were read, in words
        self.dataset = dataset  # the entry's name
        self.label_names = tuple(label_names)
        self.given = given
        if len(self.labels) != len(texts):
            raise ValueError("texts and labels differ in length")
        if given is not None and len(given) != len(self.labels):
            raise ValueError("given splits and labels differ in length")

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
        UTF-8 bytes in order, then one byte per class id (eight, after b"int64", when a
        class id does not fit in a byte).
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
        if len(self.labels) and int(self.labels.max()) > 255:
            digest.update(b"int64" + self.labels.astype("<i8").tobytes())
        else:
            digest.update(self.labels.astype(np.uint8).tobytes())
        return digest.hexdigest()

    def identity(self, options: SplitOptions) -> dict[str, Any]:
        """What, besides the rows, decides the splits and their meaning: the data set's
        name, its label names and how it is split. Empty for IMDB as the study splits it,
        so that caches made before dataset entries existed keep their names."""
        split: Any = "given" if options.fractions is None else list(options.fractions)
        if (self.dataset, self.label_names, split) == (
            DEFAULT_DATASET,
            LEGACY_LABELS,
            list(STUDY_FRACTIONS),
        ):
            return {}
        identity = {"dataset": self.dataset, "labels": list(self.label_names), "split": split}
        if self.given is not None and options.fractions is None:
            identity["given_sha256"] = hashlib.sha256(self.given.tobytes()).hexdigest()
        return identity

    def fingerprint(self, options: SplitOptions) -> str:
        """The data set's folder name under cache/: content, identity and sampling."""
        digest = self.content_hash()
        identity = self.identity(options)
        if identity:
            text = json.dumps(identity, sort_keys=True)
            digest = hashlib.sha256(f"{digest}\0{text}".encode()).hexdigest()
        return digest[:12] + options.fingerprint_suffix


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


# --------------------------------------------------------------------------- what is read


@dataclass(frozen=True)
class _Part:
    """One group of the source's splits read together: the names it may have, and (under
    `split: given`) the split of ours it becomes."""

    names: tuple[str, ...]
    given: int | None  # 0 train, 1 val, 2 test; None when the data is split anew


def _plan(entry: DatasetEntry) -> list[_Part] | None:
    """The source's splits to read, in order; None: every split (or file) there is."""
    if entry.split.given:
        if entry.splits is not None:
            if len(entry.splits) != 3:
                raise ImdbError(
                    f"{entry.key('splits')}: with `split: given` list three splits, read as "
                    f"train, validation and test (got {', '.join(entry.splits)})"
                )
            return [_Part((name,), i) for i, name in enumerate(entry.splits)]
        return [_Part(names, i) for i, names in enumerate(GIVEN_NAMES)]
    if entry.splits is None:
        return None
    return [_Part((name,), None) for name in entry.splits]


def _describe_part(part: _Part) -> str:
    return " or ".join(part.names)


def load_raw(source: DataSource) -> RawData:
    """Read every labelled row of the data set `source` points at."""
    entry = source.entry
    if source.local_copy is not None:
        return _load_local(source.local_copy, entry, f"{source.origin} {source.local_copy}")
    if entry.is_hub:
        return _load_hub(entry)
    path = entry.source_path
    return _load_local(path, entry, f"{entry.key('source')} ({path})")


def _load_local(path: Path, entry: DatasetEntry, where: str) -> RawData:
    if not path.exists():
        raise ImdbError(f"{where}: no such file or folder")
    if path.is_file():
        return _load_file_source(path, entry, where)
    try:
        empty = not any(path.iterdir())
    except OSError as exc:
        raise ImdbError(f"{where}: cannot list the folder ({exc.strerror})") from exc
    if empty:
        raise ImdbError(
            f"{where}: the folder is empty; expected parquet, CSV or JSONL files, or the "
            "aclImdb layout ({split}/{label}/*.txt)"
        )
    base = path
    if entry.config is not None and (path / entry.config).is_dir():
        base = path / entry.config  # the Hub's parquet export keeps a config in a subfolder
    acl = _find_aclimdb(base, entry)
    if acl is not None:
        return _load_aclimdb(acl, entry)
    return _load_files(base, entry, where)


def _load_file_source(path: Path, entry: DatasetEntry, where: str) -> RawData:
    if path.suffix.lower() not in DATA_SUFFIXES:
        raise ImdbError(
            f"{where}: unknown source layout: a file must be "
            f"{', '.join(DATA_SUFFIXES)} (or give a folder, or a Hub id like org/name)"
        )
    if entry.split.given:
        raise ImdbError(
            f"{entry.key('split')}: `given` needs train, validation and test files, but the "
            f"source {path} is one file; split it anew with {{seed: 42, fractions: "
            "[0.8, 0.1, 0.1]}"
        )
    texts, labels = _read_file(path, entry)
    return _raw([texts], [labels], f"{path.suffix.lstrip('.').lower()} {path}", entry)


def _matches(path: Path, split: str) -> bool:
    """`train.csv`, `train-00000-of-00001.parquet`, `train_part2.jsonl` are train files."""
    name, split = path.name.lower(), split.lower()
    return name.startswith(split) and name[len(split) : len(split) + 1] in SPLIT_SEPARATORS


def _load_files(folder: Path, entry: DatasetEntry, where: str) -> RawData:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in DATA_SUFFIXES)
    found = ", ".join(p.name for p in files[:6]) + (", ..." if len(files) > 6 else "")
    plan = _plan(entry)
    if not files:
        raise ImdbError(
            f"{where}: unknown source layout: neither data files "
            f"({', '.join(DATA_SUFFIXES)}) nor the aclImdb layout ({{split}}/{{label}}/*.txt)"
        )
    groups: list[tuple[_Part | None, list[Path]]] = []
    if plan is None:
        groups.append((None, files))
    else:
        for part in plan:
            chosen = next(
                (hits for name in part.names if (hits := [p for p in files if _matches(p, name)])),
                [],
            )
            if not chosen:
                examples = ", ".join(f"{n}.csv, {n}-*.parquet" for n in part.names[:2])
                raise ImdbError(
                    f"{where}: no {_describe_part(part)} file ({examples}, ...) and no aclImdb/ "
                    f"layout; found {found}"
                )
            groups.append((part, chosen))
    texts: list[ArrowTexts] = []
    labels: list[np.ndarray] = []
    given: list[np.ndarray] = []
    for group, paths in groups:
        for path in paths:
            file_texts, file_labels = _read_file(path, entry)
            texts.append(file_texts)
            labels.append(file_labels)
            if group is not None and group.given is not None:
                given.append(np.full(len(file_labels), group.given, dtype=np.int8))
    kinds = sorted({p.suffix.lstrip(".").lower() for _, paths in groups for p in paths})
    return _raw(texts, labels, f"{'+'.join(kinds)} {folder}", entry, given)


def _read_file(path: Path, entry: DatasetEntry) -> tuple[ArrowTexts, np.ndarray]:
    """The text column and the class ids of one parquet, CSV or JSONL file."""
    suffix = path.suffix.lower()
    wanted = [entry.text, entry.label]
    try:
        if suffix == ".parquet":
            with pq.ParquetFile(path) as parquet:
                _check_columns(parquet.schema_arrow.names, path, entry)
                table = parquet.read(columns=wanted)
        elif suffix == ".csv":
            import pyarrow.csv as pacsv

            # The text column is read as text even when it looks like numbers.
            convert = pacsv.ConvertOptions(column_types={entry.text: pa.string()})
            table = pacsv.read_csv(path, convert_options=convert)
        else:
            import pyarrow.json as pajson

            table = pajson.read_json(path)
    except ImdbError:
        raise
    except (OSError, pa.ArrowException) as exc:
        kind = {".parquet": "parquet", ".csv": "CSV"}.get(suffix, "JSON lines")
        raise ImdbError(f"{path}: cannot read as {kind} ({first_line(exc)})") from exc
    _check_columns(table.column_names, path, entry)
    return _columns(table, str(path), entry)


def _check_columns(names: Sequence[str], path: Path, entry: DatasetEntry) -> None:
    for key, column in (("text", entry.text), ("label", entry.label)):
        if column not in names:
            raise ImdbError(
                f"{entry.key(key)}: no column {column!r} in {path} "
                f"(columns: {', '.join(names) or 'none'})"
            )
        if names.count(column) > 1:
            raise ImdbError(
                f"{entry.key(key)}: {path} has {names.count(column)} columns named {column!r}; "
                "which one holds the data is not clear (rename the others)"
            )


def read_parquet(path: Path, columns: list[str]) -> pa.Table:
    # ParquetFile, not pq.read_table: the latter imports pyarrow.dataset and pandas (seconds).
    with pq.ParquetFile(path) as parquet:
        return parquet.read(columns=columns)


def int64_column(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    # Not column.to_numpy(): pyarrow imports pandas for that (a second or more).
    return np.asarray(column.to_pylist(), dtype=np.int64)


def _columns(table: pa.Table, where: str, entry: DatasetEntry) -> tuple[ArrowTexts, np.ndarray]:
    text_col, label_col = table.column(entry.text), table.column(entry.label)
    if not (pa.types.is_string(text_col.type) or pa.types.is_large_string(text_col.type)):
        raise ImdbError(
            f"{entry.key('text')}: column {entry.text!r} in {where} must hold text "
            f"(got {text_col.type})"
        )
    for key, column, values in (("text", entry.text, text_col), ("label", entry.label, label_col)):
        if values.null_count:
            raise ImdbError(
                f"{entry.key(key)}: column {column!r} in {where} has {values.null_count} "
                "empty (null) values"
            )
    count, first = _blank_rows(text_col)
    if count:
        rows = ", ".join(str(i + 1) for i in first) + (", ..." if count > len(first) else "")
        raise ImdbError(
            f"{entry.key('text')}: column {entry.text!r} in {where} has {count} empty "
            f"text(s) (row {rows}, counting data rows from 1); remove or fill them"
        )
    return ArrowTexts(list(text_col.chunks)), class_ids(label_col, where, entry)


def _blank_rows(column: pa.ChunkedArray, shown: int = 5) -> tuple[int, list[int]]:
    """How many texts are empty or only whitespace, and the first few indices (Arrow
    compute: no Python strings are built)."""
    import pyarrow.compute as pc

    blank = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(column)), 0)
    count = int(pc.sum(blank).as_py() or 0)
    if not count:
        return 0, []
    return count, [int(i) for i in pc.indices_nonzero(blank).slice(0, shown).to_pylist()]


def class_ids(column: pa.ChunkedArray, where: str, entry: DatasetEntry) -> np.ndarray:
    """The label column as class ids: label names, or integer class ids 0..C-1 (integers
    are names when the names are whole numbers, as for star ratings)."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
        kind = kind.value_type
    names = entry.labels
    ids_of = {name: i for i, name in enumerate(names)}
    listed = ", ".join(names)
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        values = int64_column(column)
        if entry.numbered_labels:
            keys = np.asarray([int(n) for n in names], dtype=np.int64)
            position = {int(k): i for i, k in enumerate(keys.tolist())}
            unknown = sorted(set(np.unique(values).tolist()) - set(position))
            if unknown:
                shown = ", ".join(str(v) for v in unknown[:5])
                raise ImdbError(
                    f"{entry.key('label')}: column {entry.label!r} in {where} holds {shown}, "
                    f"not among the labels ({listed})"
                )
            lookup = np.zeros(int(keys.max() - keys.min()) + 1, dtype=np.int64)
            lookup[keys - keys.min()] = np.arange(len(keys))
            return lookup[values - keys.min()]
        bad = np.unique(values[(values < 0) | (values >= len(names))])
        if bad.size:
            shown = ", ".join(str(v) for v in bad[:5].tolist())
            raise ImdbError(
                f"{entry.key('label')}: column {entry.label!r} in {where} holds {shown}, which "
                f"is not a class id 0..{len(names) - 1} of the labels ({listed})"
            )
        return values
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        texts = column.to_pylist()
        unknown = sorted({t for t in set(texts) if t not in ids_of})
        if unknown:
            shown = ", ".join(repr(t) for t in unknown[:5])
            raise ImdbError(
                f"{entry.key('label')}: column {entry.label!r} in {where} holds {shown}, "
                f"not among the labels ({listed})"
            )
        return np.asarray([ids_of[t] for t in texts], dtype=np.int64)
    raise ImdbError(
        f"{entry.key('label')}: column {entry.label!r} in {where} must hold label names or "
        f"integer class ids (got {kind})"
    )


# --------------------------------------------------------------------------- aclImdb


def _label_folder(split_dir: Path, label: str) -> Path | None:
    """A class's folder: named as the label, or by its first three letters (aclImdb's pos/)."""
    for name in dict.fromkeys((label, label[:3])):
        if (split_dir / name).is_dir():
            return split_dir / name
    return None


def _acl_parts(entry: DatasetEntry) -> list[_Part]:
    return _plan(entry) or [_Part(("train",), None), _Part(("test",), None)]


def _find_aclimdb(folder: Path, entry: DatasetEntry) -> Path | None:
    """`folder/aclImdb` or `folder` when it holds split folders of label folders."""
    parts = _acl_parts(entry)
    for candidate in (folder / "aclImdb", folder):
        present = [n for part in parts for n in part.names if (candidate / n).is_dir()]
        if not present:
            continue
        for part in parts:
            split_dir = next(
                (candidate / n for n in part.names if (candidate / n).is_dir()),
                candidate / part.names[0],
            )
            for label in entry.labels:
                if _label_folder(split_dir, label) is None:
                    raise ImdbError(
                        f"{candidate}: looks like aclImdb/ but {split_dir / label[:3]} "
                        f"(or {split_dir / label}) is missing"
                    )
        return candidate
    return None


def _load_aclimdb(folder: Path, entry: DatasetEntry) -> RawData:
    texts: list[str] = []
    labels: list[np.ndarray] = []
    given: list[np.ndarray] = []
    for part in _acl_parts(entry):
        split_dir = next(folder / n for n in part.names if (folder / n).is_dir())
        for label, name in enumerate(entry.labels):
            class_dir = _label_folder(split_dir, name)
            assert class_dir is not None  # checked by _find_aclimdb
            files = sorted(class_dir.glob("*.txt"))
            for path in files:
                try:
                    text = path.read_bytes().decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise ImdbError(f"{path}: not valid UTF-8 (byte {exc.start})") from exc
                except OSError as exc:
                    raise ImdbError(f"{path}: cannot read ({exc.strerror})") from exc
                if not text.strip():
                    raise ImdbError(f"{path}: an empty review; remove the file or fill it")
                texts.append(text)
            labels.append(np.full(len(files), label, dtype=np.int64))
            if part.given is not None:
                given.append(np.full(len(files), part.given, dtype=np.int8))
        skipped = [
            p.name
            for p in sorted(split_dir.iterdir())
            if p.is_dir() and p not in {_label_folder(split_dir, n) for n in entry.labels}
        ]
        if skipped:  # aclImdb's unsup/: reviews without a label
            debug(f"{split_dir}: skipped folders that are no label's: {', '.join(skipped)}")
    if not texts:
        raise ImdbError(f"{folder}: no review files (*.txt) in {{split}}/{{label}}/ folders")
    return _raw(texts, labels, f"aclImdb {folder}", entry, given)


# --------------------------------------------------------------------------- the Hub


def _load_hub(entry: DatasetEntry) -> RawData:
    # Without a network the Hub client retries for half a minute; one quick connection
    # attempt decides first (offline, a data set already in the local HF cache still loads).
    registry.go_offline_if_hub_unreachable()
    import datasets  # seconds to import (pandas and more): only when the Hub is read

    name = entry.source
    hint = _local_hint(entry)
    try:
        loaded = datasets.load_dataset(name, entry.config)
    except ConnectionError as exc:
        raise ImdbError(
            f"cannot reach the Hugging Face Hub to download '{name}' ({first_line(exc)}); {hint}"
        ) from exc
    except Exception as exc:
        raise ImdbError(
            f"cannot load dataset '{name}' from the Hub ({first_line(exc)}); {hint}"
        ) from exc
    available = list(loaded)
    plan = _plan(entry) or [_Part((split,), None) for split in available]
    texts: list[ArrowTexts] = []
    labels: list[np.ndarray] = []
    given: list[np.ndarray] = []
    for part in plan:
        split = next((n for n in part.names if n in loaded), None)
        if split is None:
            raise ImdbError(
                f"{entry.key('splits')}: dataset '{name}' has no {_describe_part(part)} split "
                f"(it has {', '.join(available)})"
            )
        data: Any = loaded[split]
        absent = [c for c in (entry.text, entry.label) if c not in data.column_names]
        if absent:
            key = "text" if entry.text in absent else "label"
            raise ImdbError(
                f"{entry.key(key)}: dataset '{name}' split {split} has no column "
                f"{absent[0]!r} (columns: {', '.join(data.column_names)})"
            )
        table = data.select_columns([entry.text, entry.label]).with_format("arrow")[:]
        split_texts, split_labels = _columns(table, f"dataset '{name}' split {split}", entry)
        texts.append(split_texts)
        labels.append(split_labels)
        if part.given is not None:
            given.append(np.full(len(split_labels), part.given, dtype=np.int8))
    return _raw(texts, labels, f"hub {name}", entry, given)


def _local_hint(entry: DatasetEntry) -> str:
    env = f" or set {entry.local_copy_env}" if entry.local_copy_env else ""
    return f"use --data-dir PATH{env} to read a local copy"


# --------------------------------------------------------------------------- all together


def _raw(
    texts: list[ArrowTexts] | list[str],
    labels: list[np.ndarray],
    source: str,
    entry: DatasetEntry,
    given: list[np.ndarray] | None = None,
) -> RawData:
    joined: ArrowTexts | list[str]
    if texts and isinstance(texts[0], ArrowTexts):
        joined = ArrowTexts([c for t in texts if isinstance(t, ArrowTexts) for c in t.chunks])
    else:
        joined = [t for t in texts if isinstance(t, str)]
    if not len(joined):
        raise ImdbError(f"{source}: no rows")
    ids = np.concatenate(labels).astype(np.int64)
    present = np.unique(ids)
    if len(present) < 2:
        only = entry.labels[int(present[0])]
        raise ImdbError(
            f"{entry.key('label')}: every row of {source} is labelled {only!r}; a classifier "
            "needs at least two classes"
        )
    absent = [entry.labels[i] for i in range(entry.num_classes) if i not in set(present.tolist())]
    if absent:
        warn(f"{entry.path}: no rows are labelled {', '.join(absent)}")
    return RawData(
        joined,
        ids,
        source,
        dataset=entry.name,
        label_names=entry.labels,
        given=np.concatenate(given) if given else None,
    )
