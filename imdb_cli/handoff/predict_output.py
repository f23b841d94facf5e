"""Where `imdb predict` writes its scores: a table, JSON lines, CSV or JSON, and .npy vectors.

One row per review, in input order: its key (`row` number, or the input's own `id`), the
predicted label and `prob_<label>` for each class. jsonl, csv and json are written as the
chunks come (memory stays flat); a table needs every row before it can size its columns.

Files (`-o`, `--embeddings`) are written under a temporary name in the same folder and
renamed when everything is written, so an error or Ctrl-C leaves nothing under the name.
"""

from __future__ import annotations

import contextlib
import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
from rich.table import Table

from imdb_cli.console import file_console, out
from imdb_cli.errors import ImdbError
from imdb_cli.files import atomic_path
from imdb_cli.handoff.predict import ScoredChunk

FORMATS = ("table", "jsonl", "csv", "tsv", "json")
DELIMITERS = {"csv": ",", "tsv": "\t"}
DECIMALS = 7  # probabilities are float32: 7 decimals keep them to within 1e-7
EXCERPT = 40  # characters of a review shown in a table


def format_for(output: Path | None, given: str | None) -> str:
    """--format, or guessed from -o's suffix (.jsonl, .csv, .tsv, .json), else a table."""
    if given is not None:
        if given not in FORMATS:
            raise ImdbError(f"--format must be one of {', '.join(FORMATS)} (got {given!r})")
        return given
    suffix = output.suffix.lower().lstrip(".") if output is not None else ""
    return suffix if suffix in FORMATS and suffix != "table" else "table"


def check_target(path: Path, flag: str) -> None:
    """Fail before any work when `path` cannot be written: its folder must exist."""
    if path.is_dir():
        raise ImdbError(f"{flag} {path}: is a folder; give a file name")
    if not path.parent.is_dir():
        raise ImdbError(f"{flag} {path}: folder {path.parent} does not exist")


def prob_columns(label_names: list[str]) -> list[str]:
    return [f"prob_{name}" for name in label_names]


class Rows:
    """Writes scored chunks in one format to a text stream."""

    def __init__(
        self, stream: IO[str], fmt: str, key_name: str, label_names: list[str], to_terminal: bool
    ) -> None:
        self.stream = stream
        self.fmt = fmt
        self.key_name = key_name
        self.label_names = label_names
        self.columns = [key_name, "label", *prob_columns(label_names)]
        self.to_terminal = to_terminal
        self.count = 0
        self.table_rows: list[list[str]] = []
        self.csv = (
            csv.writer(stream, delimiter=DELIMITERS[fmt], lineterminator="\n")
            if fmt in DELIMITERS
            else None
        )
        self.started = False

    def _start(self) -> None:
        """The CSV header or the JSON bracket, written with the first row: a bad input found
        in the first chunk leaves standard output empty."""
        self.started = True
        if self.csv is not None:
            self.csv.writerow(self.columns)
        elif self.fmt == "json":
            self.stream.write("[")

    def write(self, chunk: ScoredChunk) -> None:
        if not self.started:
            self._start()
        predicted = chunk.probs.argmax(axis=1)
        for i, key in enumerate(chunk.keys):
            probs = [round(float(p), DECIMALS) for p in chunk.probs[i]]
            label = self.label_names[int(predicted[i])]
            if self.fmt == "table":
                self.table_rows.append(
                    [str(key), label, *(f"{p:.4f}" for p in probs), _excerpt(chunk.texts[i])]
                )
            elif self.csv is not None:
                self.csv.writerow([key, label, *probs])
            else:
                record = json.dumps(dict(zip(self.columns, [key, label, *probs], strict=True)))
                if self.fmt == "json":
                    record = ("\n  " if self.count == 0 else ",\n  ") + record
                else:
                    record += "\n"
                self.stream.write(record)
            self.count += 1

    def close(self) -> None:
        if not self.started:
            self._start()
        if self.fmt == "json":
            self.stream.write("\n]\n" if self.count else "]\n")
        elif self.fmt == "table":
            table = Table(*self.columns, "review", show_edge=False, pad_edge=False)
            for row in self.table_rows:
                table.add_row(*row)
            if self.to_terminal:
                out.print(table)
            else:
                file_console(self.stream).print(table)
        self.stream.flush()


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= EXCERPT else flat[: EXCERPT - 1] + "…"


class Embeddings:
    """Pooled vectors appended chunk by chunk to a .npy file whose length is not known yet.

    The header is written first for zero rows and rewritten at the end for the real count:
    numpy leaves room in every header for the first dimension to grow to 21 digits, so the
    header keeps its length and the rows never move.
    """

    def __init__(self, handle: IO[bytes], width: int) -> None:
        self.handle = handle
        self.width = width
        self.rows = 0
        self._header(0)
        self.start = handle.tell()

    def _header(self, rows: int) -> None:
        header = {"descr": "<f4", "fortran_order": False, "shape": (rows, self.width)}
        np.lib.format.write_array_header_1_0(self.handle, header)

    def write(self, vectors: np.ndarray) -> None:
        self.handle.write(np.ascontiguousarray(vectors, dtype="<f4").tobytes())
        self.rows += len(vectors)

    def close(self) -> None:
        self.handle.seek(0)
        self._header(self.rows)
        if self.handle.tell() != self.start:  # cannot happen with numpy's growth room
            raise ImdbError("--embeddings: the .npy header changed length; nothing was written")
        self.handle.flush()


@contextlib.contextmanager
def opened(output: Path | None, fmt: str, key_name: str, label_names: list[str]) -> Iterator[Rows]:
    """Rows to `output` (atomically) or to standard output."""
    if output is None:
        rows = Rows(sys.stdout, fmt, key_name, label_names, to_terminal=True)
        yield rows
        rows.close()
        return
    with atomic_path(output) as tmp, open(tmp, "w", encoding="utf-8", newline="") as stream:
        rows = Rows(stream, fmt, key_name, label_names, to_terminal=False)
        yield rows
        rows.close()


@contextlib.contextmanager
def embeddings_file(path: Path | None, width: int) -> Iterator[Embeddings | None]:
    if path is None:
        yield None
        return
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        vectors = Embeddings(handle, width)
        yield vectors
        vectors.close()


def write_all(rows: Rows, vectors: Embeddings | None, chunks: Iterator[ScoredChunk]) -> Any:
    for chunk in chunks:
        rows.write(chunk)
        if vectors is not None and chunk.pooled is not None:
            vectors.write(chunk.pooled)
    return rows.count
