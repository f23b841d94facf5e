"""Reviews to score, read in chunks from `--text`, a file or standard input.

    .txt and `-` (standard input)   one review a line
    .csv / .tsv                     a header row; the review in `--column` (default `text`)
    .jsonl                          one JSON object a line; the review under `--column`
    .parquet                        the review in column `--column`

Files are read a chunk at a time, so memory stays flat whatever their size. Every problem
names the file and the line (or row) and the column: a line that is not UTF-8, a CSV or
JSON line that does not parse, a column that is not there (with the ones that are), an
empty review (unless `skip_empty`, which counts them instead).

Each review keeps a key: the input's own `id` column when it has one, else its row
number, counted from 1 (for .txt, the line number).
"""

from __future__ import annotations

import csv
import itertools
import json
import re
import stat
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from imdb_cli.errors import ImdbError

STDIN = "-"
ID_COLUMN = "id"
ROW_KEY = "row"
SUFFIXES = (".txt", ".csv", ".tsv", ".jsonl", ".parquet")
CHUNK = 2048  # reviews per chunk: enough to sort by length, small enough to keep memory flat


@dataclass
class ReviewChunk:
    keys: list[Any]  # the `id` column's values, or row numbers
    texts: list[str]


@dataclass
class ReviewSource:
    """Where reviews come from, how to name them in messages, and how they are keyed."""

    name: str  # how messages name the input: the path, `standard input` or `--text`
    key_name: str  # `id` (the input's own column) or `row`
    total: int | None  # reviews, when known without reading everything (for progress)
    chunks: Iterator[ReviewChunk]
    skipped: int = 0  # empty reviews passed over (skip_empty)


def from_texts(texts: Sequence[str], *, skip_empty: bool = False) -> ReviewSource:
    """`--text` given one or more times."""
    source = ReviewSource("--text", ROW_KEY, len(texts), iter(()))
    rows = ((i, i, text) for i, text in enumerate(texts, start=1))
    source.chunks = _chunked(_checked(rows, source, skip_empty, lambda r: f"--text number {r}"))
    return source


def open_reviews(path: str, column: str = "text", *, skip_empty: bool = False) -> ReviewSource:
    """A file (by its suffix) or `-`: a source whose chunks are read lazily.

    The file is opened, and its header or schema checked, before this returns: a missing
    file or column fails here, before any output is written.
    """
    if path == STDIN:
        return _lines(sys.stdin.buffer, "standard input", skip_empty)
    file = Path(path)
    if file.is_dir():
        raise ImdbError(f"--file {path}: is a folder; give a file of reviews")
    if not file.exists():
        raise ImdbError(f"--file {path}: no such file")
    # A FIFO or a character device (`--file <(zcat reviews.txt.gz)`) is read once, as a
    # stream: one review a line when it has no suffix (a shell's pipe has none).
    mode = file.stat().st_mode
    stream = stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)
    suffix = file.suffix.lower() or (".txt" if stream else "")
    if suffix not in SUFFIXES:
        raise ImdbError(
            f"--file {path}: unknown kind of file {suffix or '(no suffix)'!r}; "
            f"use {', '.join(SUFFIXES)} or - for standard input"
        )
    if not stream and not stat.S_ISREG(mode):
        raise ImdbError(f"--file {path}: neither a file nor a pipe")
    if stream and suffix == ".parquet":
        raise ImdbError(
            f"--file {path}: a parquet file is read by seeking; give a file, not a pipe"
        )
    if not stream and file.stat().st_size == 0:
        raise ImdbError(f"--file {path}: the file is empty")
    if suffix == ".parquet":
        return _parquet(file, column, skip_empty)
    handle = _open(file)
    if suffix == ".txt":
        total = None if stream else _count_lines(file)
        return _lines(handle, str(file), skip_empty, total=total)
    if suffix == ".jsonl":
        return _jsonl(handle, str(file), column, skip_empty)
    return _delimited(handle, str(file), column, skip_empty, "\t" if suffix == ".tsv" else ",")


# --------------------------------------------------------------------------- checks


def _checked(
    rows: Iterable[tuple[Any, Any, Any]],
    source: ReviewSource,
    skip_empty: bool,
    where: Callable[[Any], str],
) -> Iterator[tuple[Any, str]]:
    """(key, place, text) -> (key, text); empty reviews refused or skipped.

    `place` is what `where` turns into the message's location (a line number, or a row and
    its line), formatted only when there is something to say.
    """
    for key, place, text in rows:
        if text is None or (isinstance(text, str) and not text.strip()):
            if skip_empty:
                source.skipped += 1
                continue
            what = "no review (null)" if text is None else "an empty review"
            raise ImdbError(f"{where(place)}: {what} (--skip-empty skips such rows)")
        if not isinstance(text, str):
            raise ImdbError(f"{where(place)}: the review is not text ({type(text).__name__})")
        yield key, text


def _chunked(rows: Iterator[tuple[Any, str]]) -> Iterator[ReviewChunk]:
    size = CHUNK
    chunk = ReviewChunk([], [])
    for key, text in rows:
        chunk.keys.append(key)
        chunk.texts.append(text)
        if len(chunk.texts) == size:
            yield chunk
            chunk = ReviewChunk([], [])
    if chunk.texts:
        yield chunk


def _no_column(name: str, column: str, columns: Sequence[str]) -> ImdbError:
    listed = ", ".join(repr(c) for c in columns) or "none"
    return ImdbError(f"{name}: no column {column!r} (--column); its columns: {listed}")


def _empty(name: str) -> ImdbError:
    return ImdbError(f"{name}: no reviews in it")


# --------------------------------------------------------------------------- text lines


def _open(file: Path) -> IO[bytes]:
    try:
        return open(file, "rb")
    except OSError as exc:
        raise ImdbError(f"--file {file}: cannot read ({exc.strerror or exc})") from exc


# A line ends at \n, \r\n or a lone \r (old Mac files, some exports): each is a line end,
# never part of a review. (Not str.splitlines: it also splits at \x0b, \x1c, \u2028 and
# others, which may stand inside a review.)
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


def _decoded(handle: IO[bytes], name: str) -> Iterator[tuple[int, str]]:
    """(line number, text with its line end) of each line; one that is not UTF-8 is named."""
    # Decided when reading starts: standard input may be swapped out later, while a model
    # loads (guarded_loading.no_stdin), which is when an abandoned reader may be collected.
    owned = handle is not sys.stdin.buffer
    number = 0
    try:
        for raw in handle:  # split at \n; lone \r are split below, after decoding
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                before = raw[: exc.start]  # holds no \n: only lone \r end lines in it
                at, column = number + 1 + before.count(b"\r"), exc.start - before.rfind(b"\r")
                raise ImdbError(
                    f"{name} line {at}: not UTF-8 text (byte {column} of the line)"
                ) from exc
            if number == 0:
                text = text.removeprefix("\ufeff")  # a byte-order mark is not part of the review
            for line in _LINE.findall(text):
                number += 1
                yield number, line
    except OSError as exc:
        raise ImdbError(f"{name}: cannot read ({exc.strerror or exc})") from exc
    finally:
        if owned:
            handle.close()


def _count_lines(file: Path) -> int:
    """Lines of a text file, read in blocks: each \n, \r\n or lone \r ends one, and a last
    line without a line end counts."""
    count, last = 0, b"\n"
    with open(file, "rb") as handle:
        while block := handle.read(1 << 20):
            count += block.count(b"\n") + block.count(b"\r") - block.count(b"\r\n")
            if last == b"\r" and block.startswith(b"\n"):
                count -= 1  # a \r\n cut between two blocks ends one line
            last = block[-1:]
    return count + (last not in (b"\n", b"\r"))


def _lines(
    handle: IO[bytes], name: str, skip_empty: bool, total: int | None = None
) -> ReviewSource:
    source = ReviewSource(name, ROW_KEY, total, iter(()))

    def rows() -> Iterator[tuple[Any, int, str]]:
        seen = False
        for number, line in _decoded(handle, name):
            seen = True
            yield number, number, line.rstrip("\r\n")
        if not seen:
            raise _empty(name)

    source.chunks = _chunked(_checked(rows(), source, skip_empty, lambda n: f"{name} line {n}"))
    return source


def _jsonl(handle: IO[bytes], name: str, column: str, skip_empty: bool) -> ReviewSource:
    """One JSON object a line; blank lines are not records and are passed over."""
    records = (
        (number, _json_object(line, name, number))
        for number, line in _decoded(handle, name)
        if line.strip()
    )
    first = next(records, None)
    if first is None:
        raise _empty(name)
    if column not in first[1]:
        raise _no_column(f"{name} line {first[0]}", column, list(first[1]))
    keyed = ID_COLUMN in first[1] and column != ID_COLUMN
    source = ReviewSource(name, ID_COLUMN if keyed else ROW_KEY, None, iter(()))

    def rows() -> Iterator[tuple[Any, int, Any]]:
        for row, (number, record) in enumerate(itertools.chain([first], records), start=1):
            if column not in record:
                raise _no_column(f"{name} line {number}", column, list(record))
            if keyed and ID_COLUMN not in record:
                raise ImdbError(f"{name} line {number}: no {ID_COLUMN!r} key (line 1 has one)")
            yield (record[ID_COLUMN] if keyed else row), number, record[column]

    checked = _checked(rows(), source, skip_empty, lambda n: f"{name} line {n}, {column!r}")
    source.chunks = _chunked(checked)
    return source


def _json_object(line: str, name: str, number: int) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ImdbError(f"{name} line {number}: not JSON ({exc.msg}, column {exc.colno})") from exc
    if not isinstance(value, dict):
        raise ImdbError(f"{name} line {number}: not a JSON object")
    return value


# --------------------------------------------------------------------------- csv / tsv


def _delimited(
    handle: IO[bytes], name: str, column: str, skip_empty: bool, delimiter: str
) -> ReviewSource:
    # Reviews can be long: the csv module's default field limit (128 kB) is not a review's.
    csv.field_size_limit(2**31 - 1)
    lines = (line for _, line in _decoded(handle, name))
    reader = csv.reader(lines, delimiter=delimiter, strict=True)  # bad quoting is an error
    kind = "TSV" if delimiter == "\t" else "CSV"

    def unreadable(exc: csv.Error) -> ImdbError:
        return ImdbError(f"{name} line {reader.line_num}: not readable {kind} ({exc})")

    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise unreadable(exc) from exc
    if not header:
        raise _empty(name)
    if column not in header:
        raise _no_column(name, column, header)
    for repeated in (column, ID_COLUMN):
        if header.count(repeated) > 1:
            raise ImdbError(
                f"{name} line 1: {header.count(repeated)} columns are named {repeated!r}; which "
                "one to read is not clear (rename the others)"
            )
    at = header.index(column)
    id_at = header.index(ID_COLUMN) if ID_COLUMN in header and column != ID_COLUMN else None
    source = ReviewSource(name, ROW_KEY if id_at is None else ID_COLUMN, None, iter(()))

    def rows() -> Iterator[tuple[Any, tuple[int, int], str]]:
        row = 0
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                raise unreadable(exc) from exc
            if not fields:
                continue  # a blank line is no row
            row += 1
            if len(fields) != len(header):
                raise ImdbError(
                    f"{name} line {reader.line_num}: {len(fields)} fields, "
                    f"the header has {len(header)}"
                )
            yield (row if id_at is None else fields[id_at]), (row, reader.line_num), fields[at]
        if row == 0:
            raise _empty(name)

    def where(place: tuple[int, int]) -> str:
        return f"{name} line {place[1]} (row {place[0]}), {column!r}"

    source.chunks = _chunked(_checked(rows(), source, skip_empty, where))
    return source


# --------------------------------------------------------------------------- parquet


def _parquet(file: Path, column: str, skip_empty: bool) -> ReviewSource:
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = str(file)
    try:
        parquet = pq.ParquetFile(file)
    except (pa.ArrowException, OSError) as exc:
        raise ImdbError(f"{name}: not a readable parquet file ({_first_line(exc)})") from exc
    schema = parquet.schema_arrow
    if column not in schema.names:
        raise _no_column(name, column, schema.names)
    for repeated in (column, ID_COLUMN):
        if schema.names.count(repeated) > 1:
            raise ImdbError(
                f"{name}: {schema.names.count(repeated)} columns are named {repeated!r}; which "
                "one to read is not clear (rename the others)"
            )
    kind = schema.field(column).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise ImdbError(f"{name}: column {column!r} holds {kind}, not text (--column)")
    keyed = ID_COLUMN in schema.names and column != ID_COLUMN
    total = parquet.metadata.num_rows
    if total == 0:
        raise _empty(name)
    source = ReviewSource(name, ID_COLUMN if keyed else ROW_KEY, total, iter(()))
    wanted = [column, ID_COLUMN] if keyed else [column]

    def rows() -> Iterator[tuple[Any, int, Any]]:
        row = 0
        try:
            for batch in parquet.iter_batches(batch_size=CHUNK, columns=wanted):
                texts = batch.column(0).to_pylist()
                keys = batch.column(1).to_pylist() if keyed else None
                for i, text in enumerate(texts):
                    row += 1
                    yield (keys[i] if keys is not None else row), row, text
        except (pa.ArrowException, OSError) as exc:
            raise ImdbError(f"{name}: not a readable parquet file ({_first_line(exc)})") from exc

    checked = _checked(rows(), source, skip_empty, lambda r: f"{name} row {r}, {column!r}")
    source.chunks = _chunked(checked)
    return source


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
