"""The cache on disk: content-addressed entries, each built whole or not at all.

    cache/<fingerprint>/split-seed42/                    {train,val,test}.parquet + manifest
    cache/<fingerprint>/<tokenizer-key>-len128-seed42/   int arrays per split + manifest

An entry is built in a temp folder beside its final place and renamed into place once
complete (manifest last), so a killed or concurrent `prepare` never leaves an entry that a
later run would trust. An entry is trusted only when its manifest parses, matches the
inputs asked for, and the files it lists exist with the right shapes.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from imdb_cli.console import debug, warn
from imdb_cli.data.sources import read_parquet
from imdb_cli.data.split import SPLITS
from imdb_cli.errors import ImdbError, first_line
from imdb_cli.files import temp_path, write_json_atomic

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ARRAYS = {  # name -> (dtype, 2-d with max_length columns?)
    "input_ids": (np.int32, True),
    "lengths": (np.int32, False),
    "labels": (np.int64, False),
    "review_ids": (np.int64, False),
}
# --truncation -> the ending of a tokenized entry's folder name.
TRUNCATION_SUFFIXES = {"head": "", "tail": "-tail", "head+tail": "-headtail"}
_TOKENIZED_NAME = re.compile(
    r"^(?P<key>.+)-len(?P<length>\d+)-seed(?P<seed>\d+)(?P<suffix>"
    + "|".join(re.escape(s) for s in TRUNCATION_SUFFIXES.values() if s)
    + ")?$"
)


def split_dir_name(seed: int) -> str:
    return f"split-seed{seed}"


def tokenized_dir_name(key: str, max_length: int, seed: int, truncation: str) -> str:
    return f"{key}-len{max_length}-seed{seed}{TRUNCATION_SUFFIXES[truncation]}"


class TokenizedName(NamedTuple):
    key: str
    max_length: int
    seed: int
    truncation: str


def parse_tokenized_dir_name(name: str) -> TokenizedName | None:
    """What a tokenized entry's folder name says (None: not such a name)."""
    match = _TOKENIZED_NAME.match(name)
    if match is None:
        return None
    suffix = match["suffix"] or ""
    truncation = next(t for t, s in TRUNCATION_SUFFIXES.items() if s == suffix)
    return TokenizedName(match["key"], int(match["length"]), int(match["seed"]), truncation)


def array_file(split: str, name: str) -> str:
    return f"{split}_{name}.npy"


def read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def recorded_datasets(cache_root: Path) -> dict[str, Path | None]:
    """The data sets prepared under `cache_root`, by name, with the YAML each was read from
    (None when its manifest predates that record or the file is gone)."""
    found: dict[str, Path | None] = {}
    for folder in sorted(cache_root.glob("*/split-seed*")):
        manifest = read_manifest(folder)
        if manifest is None or "dataset" not in manifest:
            continue
        recorded = manifest.get("dataset_yaml")
        path = Path(recorded) if isinstance(recorded, str) and Path(recorded).is_file() else None
        if path is not None or str(manifest["dataset"]) not in found:
            found[str(manifest["dataset"])] = path
    return found


def matches(manifest: dict[str, Any], expected: dict[str, Any]) -> str | None:
    """None when every expected key has the expected value; else what differs."""
    for key, value in expected.items():
        if manifest.get(key) != value:
            return f"{key} is {manifest.get(key)!r}, expected {value!r}"
    return None


def check_split_entry(path: Path, expected: dict[str, Any]) -> dict[str, Any] | None:
    """The split entry's manifest, if it matches `expected` and its parquet files hold the
    rows it lists (else None)."""

    def files_problem(manifest: dict[str, Any]) -> str | None:
        sizes = {s: int(manifest["sizes"][s]) for s in SPLITS}
        for split in SPLITS:
            rows = pq.read_metadata(path / f"{split}.parquet").num_rows
            if rows != sizes[split]:
                return f"{split}.parquet has {rows} rows, manifest says {sizes[split]}"
        return None

    return _checked(path, expected, files_problem)


def check_tokenized_entry(path: Path, expected: dict[str, Any]) -> dict[str, Any] | None:
    """The tokenized entry's manifest, if it matches `expected` and its arrays have the
    shapes and types it lists (else None)."""

    def files_problem(manifest: dict[str, Any]) -> str | None:
        max_length = int(manifest["max_length"])
        for split in SPLITS:
            n = int(manifest["sizes"][split])
            for name, (dtype, wide) in ARRAYS.items():
                array = np.load(path / array_file(split, name), mmap_mode="r")
                shape = (n, max_length) if wide else (n,)
                if array.shape != shape or array.dtype != dtype:
                    return f"{array_file(split, name)} is {array.dtype}{array.shape}"
        return None

    return _checked(path, expected, files_problem)


def _checked(
    path: Path,
    expected: dict[str, Any],
    files_problem: Callable[[dict[str, Any]], str | None],
) -> dict[str, Any] | None:
    manifest = read_manifest(path)
    if manifest is None:
        debug(f"{path}: no readable manifest")
        return None
    try:
        why = matches(manifest, expected) or files_problem(manifest)
    except (OSError, KeyError, TypeError, ValueError, pa.ArrowException) as exc:
        why = f"unreadable ({first_line(exc)})"
    if why:
        debug(f"{path}: not used: {why}")
        return None
    return manifest


def read_split_table(split_dir: Path, split: str) -> pa.Table:
    path = split_dir / f"{split}.parquet"
    try:
        return read_parquet(path, ["review_id", "text", "label"])
    except (OSError, pa.ArrowException) as exc:
        raise ImdbError(f"{path}: cannot read ({first_line(exc)}); rerun `imdb prepare`") from exc


def _discard(path: Path) -> None:
    """Move a bad entry out of the way (atomically), then delete it."""
    aside = temp_path(path)
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    shutil.rmtree(aside, ignore_errors=True)


def publish(
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


def build_entry(
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
    tmp = temp_path(final)
    try:
        tmp.mkdir(parents=True)
        manifest = fill(tmp)
        write_json_atomic(tmp / MANIFEST, manifest)
        return publish(tmp, final, manifest, check)
    except OSError as exc:
        raise ImdbError(f"cannot write the cache entry {final} ({exc.strerror or exc})") from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")
