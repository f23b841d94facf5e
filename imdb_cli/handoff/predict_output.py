"""Where `imdb predict` writes its scores: a table, JSON lines, CSV or JSON, and .npy vectors.

One row per review, in input order: its key (`row` number, or the input's own `id`), the
predicted label and `prob_<label>` for each class. jsonl, csv and json are written as the
chunks come (memory stays flat); a table needs every row before it can size its columns.

Files (`-o`, `--embeddings`) are written under a temporary name in the same folder and
renamed when everything is written, so an error or Ctrl-C leaves nothing under the name.
What an output names is decided before any work (`output_targets`), and never replaces what
the user has:
  - a regular file, or a new name: written atomically (temp file, rename); temp files a
    killed `imdb predict` left beside it are removed first;
  - a symbolic link: what it points at, by these same rules; the link stays;
  - a character device or a FIFO (`/dev/null`, `/dev/stdout`, a named pipe): `-o` is
    written into it as a stream, in place (nothing to rename); `--embeddings` is refused
    (its .npy header is rewritten at the end, which needs a file);
  - the same file as `--file` (or the file standard input reads), the same file for `-o`
    and `--embeddings`, a folder, a block device, a socket, a dangling link: refused.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from rich.table import Table

from imdb_cli.console import file_console, info, out
from imdb_cli.errors import ImdbError
from imdb_cli.files import atomic_path, clean_stale_temps
from imdb_cli.handoff.predict import ScoredChunk
from imdb_cli.handoff.review_files import STDIN

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


@dataclass(frozen=True)
class Target:
    """Where one output goes: `path` (a link's target), and whether it is written in place
    (a device or FIFO, as a stream) or atomically (a file)."""

    flag: str
    given: Path
    path: Path
    in_place: bool = False


def check_target(path: Path, flag: str) -> Target:
    """Fail before any work when `path` cannot be written or would replace what the user
    has (see the module's notes); the Target to write."""
    target = path
    if path.is_symlink():
        target = path.resolve()
        if not target.exists():
            raise ImdbError(f"{flag} {path}: a symbolic link to {target}, which does not exist")
    if target.is_dir():
        raise ImdbError(f"{flag} {path}: is a folder; give a file name")
    if not target.parent.is_dir():
        raise ImdbError(f"{flag} {path}: folder {target.parent} does not exist")
    if not target.exists():
        return Target(flag, path, target)
    mode = target.stat().st_mode
    if stat.S_ISREG(mode):
        return Target(flag, path, target)
    if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
        return Target(flag, path, target, in_place=True)
    kind = "a block device" if stat.S_ISBLK(mode) else "neither a file, a FIFO nor a device"
    raise ImdbError(f"{flag} {path}: is {kind}; refused")


def output_targets(
    output: Path | None, embeddings: Path | None, review_file: str | None
) -> tuple[Target | None, Target | None]:
    """`-o` and `--embeddings` checked before any work: neither may be the reviews' file
    (a hard link or a symbolic link to it included) nor the other one."""
    targets = [
        check_target(path, flag) if path is not None else None
        for path, flag in ((output, "--output"), (embeddings, "--embeddings"))
    ]
    rows, vectors = targets
    if vectors is not None and vectors.in_place:
        raise ImdbError(
            f"--embeddings {vectors.given}: is a device or FIFO; the .npy file is finished by "
            "rewriting its header, so give a file"
        )
    given = [t for t in targets if t is not None and t.path.exists()]
    if rows is not None and vectors is not None and _same(rows.path, vectors.path):
        raise ImdbError(
            f"--output {rows.given} and --embeddings {vectors.given} are the same file; give two"
        )
    for target in given:
        if review_file == STDIN:
            if _is_stdin(target.path):
                raise ImdbError(
                    f"{target.flag} {target.given}: is the file standard input reads the reviews "
                    "from; writing it would replace them"
                )
        elif review_file is not None and _same(target.path, Path(review_file)):
            raise ImdbError(
                f"{target.flag} {target.given}: is the --file {review_file} being read; writing "
                "it would replace the reviews (give another file)"
            )
    return rows, vectors


def _same(a: Path, b: Path) -> bool:
    """The same file: one path, or two names (links) of one file."""
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def _is_stdin(path: Path) -> bool:
    try:
        standard, mine = os.fstat(sys.stdin.fileno()), path.stat()
    except (OSError, ValueError, io.UnsupportedOperation):
        return False  # no real standard input (a test runner's stream)
    return stat.S_ISREG(mine.st_mode) and (standard.st_dev, standard.st_ino) == (
        mine.st_dev,
        mine.st_ino,
    )


def clean_leftovers(target: Target | None) -> None:
    """Temp files of an earlier `imdb predict` into the same file that was killed."""
    if target is None or target.in_place:
        return
    for path in clean_stale_temps(target.path.parent, of=target.path.name):
        info(f"removed {path}, left by an interrupted earlier write of {target.path.name}")


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
def opened(
    output: Target | None, fmt: str, key_name: str, label_names: list[str]
) -> Iterator[Rows]:
    """Rows to `output` (atomically, or into a device or FIFO as it comes) or to standard
    output."""
    if output is None:
        rows = Rows(sys.stdout, fmt, key_name, label_names, to_terminal=True)
        yield rows
        rows.close()
        return
    if output.in_place:  # a device or FIFO: as a stream, the way a shell's `>` writes it
        with open(output.path, "w", encoding="utf-8", newline="") as stream:
            rows = Rows(stream, fmt, key_name, label_names, to_terminal=False)
            yield rows
            rows.close()
        return
    with atomic_path(output.path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as stream:
        rows = Rows(stream, fmt, key_name, label_names, to_terminal=False)
        yield rows
        rows.close()


@contextlib.contextmanager
def embeddings_file(target: Target | None, width: int) -> Iterator[Embeddings | None]:
    if target is None:
        yield None
        return
    with atomic_path(target.path) as tmp, open(tmp, "wb") as handle:
        vectors = Embeddings(handle, width)
        yield vectors
        vectors.close()


def write_all(rows: Rows, vectors: Embeddings | None, chunks: Iterator[ScoredChunk]) -> Any:
    for chunk in chunks:
        rows.write(chunk)
        if vectors is not None and chunk.pooled is not None:
            vectors.write(chunk.pooled)
    return rows.count
