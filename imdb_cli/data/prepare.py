"""`imdb prepare`: read, split and tokenize once per tokenizer, reusing every valid entry.

    dataset entry -> raw rows -> split entry (cache/<fingerprint>/split-seed42/)
                -> one tokenized entry per tokenizer (cache/<fingerprint>/<key>-len128-seed42/)

Models that share a tokenizer (by behaviour, see encoding.tokenizer_key) share one entry.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from imdb_cli import registry
from imdb_cli.config import MIN_MAX_LENGTH, TRUNCATIONS, ModelSpec
from imdb_cli.console import debug, info, progress
from imdb_cli.data.encoding import Encoder, Tokenization, tokenizer_key
from imdb_cli.data.entry import DatasetEntry
from imdb_cli.data.memo import Memo, spec_digest, tokenizer_digest
from imdb_cli.data.sources import DataSource, RawData, int64_column, load_raw
from imdb_cli.data.split import SPLITS, SplitOptions, ids_sha256, make_split
from imdb_cli.data.store import (
    ARRAYS,
    FORMAT_VERSION,
    array_file,
    build_entry,
    check_split_entry,
    check_tokenized_entry,
    now,
    read_split_table,
    split_dir_name,
    tokenized_dir_name,
)
from imdb_cli.data.tokenized import TokenizedCache
from imdb_cli.errors import ImdbError
from imdb_cli.files import atomic_path, clean_stale_temps, save_array_atomic
from imdb_cli.workspace import Workspace

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

TOKENIZE_BATCH = 1000
PARALLELISM_ENV = "TOKENIZERS_PARALLELISM"


@dataclass(frozen=True)
class PrepareResult:
    dataset: DatasetEntry
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


def _check_options(max_length: int, truncation: str) -> None:
    if truncation not in TRUNCATIONS:
        raise ImdbError(
            f"--truncation must be one of {', '.join(TRUNCATIONS)} (got {truncation!r})"
        )
    if max_length < MIN_MAX_LENGTH:
        raise ImdbError(f"--max-length must be at least {MIN_MAX_LENGTH} (got {max_length})")


def _check_max_length(spec: ModelSpec, max_length: int, memo: Memo) -> None:
    digest = spec_digest(spec)
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
    """Read, split and tokenize the data set `source` points at for `specs`, reusing every
    valid cache entry. `options` carry the entry's split policy (SplitOptions.of)."""
    entry = source.entry
    if options.fractions != (None if entry.split.given else entry.split.fractions):
        raise ValueError(f"split options {options} do not follow {entry.path}")  # a bug
    _check_options(max_length, truncation)
    memo = Memo(workspace)
    tokenizers: dict[str, PreTrainedTokenizerBase] = {}
    keys: dict[str, str] = {}  # model key -> tokenizer key
    sources: dict[str, list[str]] = {}  # tokenizer key -> tokenizer source strings
    for spec in specs:
        _check_max_length(spec, max_length, memo)
        digest = tokenizer_digest(spec)
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

    split_dir, split_manifest, split_reused = _ensure_split(
        raw, fingerprint, options, entry_dir, entry
    )
    split = _SplitEntry(split_dir, split_manifest, fingerprint, raw.source, options, entry)
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
            split, key, users, tokenizers.get(key), memo, sources[key], max_length, truncation
        )
        for spec in users:
            caches[spec.key] = cache
    memo.save()
    return PrepareResult(
        dataset=entry,
        data_fingerprint=fingerprint,
        source=raw.source,
        split_dir=split_dir,
        split_manifest=split_manifest,
        split_reused=split_reused,
        duplicates_dropped=dropped,
        caches=caches,
    )


@dataclass(frozen=True)
class _SplitEntry:
    """The split every tokenized entry of one `prepare` is made from."""

    path: Path
    manifest: dict[str, Any]
    fingerprint: str
    source: str  # where the reviews were read, in words
    options: SplitOptions
    entry: DatasetEntry


def _tokenized_target(
    split: _SplitEntry, key: str, max_length: int, truncation: str
) -> tuple[Path, dict[str, Any]]:
    """Where the entry for tokenizer `key` goes, and what its manifest must say."""
    options = split.options
    final = split.path.parent / tokenized_dir_name(key, max_length, options.seed, truncation)
    expected = {
        **_tokenized_expected(split.fingerprint, key, options, max_length, truncation),
        "sizes": split.manifest["sizes"],
        "test_review_ids_sha256": split.manifest["test_review_ids_sha256"],
    }
    return final, expected


def _ensure_tokenized(
    split: _SplitEntry,
    key: str,
    users: list[ModelSpec],
    tokenizer: PreTrainedTokenizerBase | None,
    memo: Memo,
    sources: list[str],
    max_length: int,
    truncation: str,
) -> TokenizedCache:
    """The tokenized entry for `users` (who share tokenizer `key`), reused or built.

    `tokenizer` is None when `key` came from the memo: it is loaded only if the entry must
    be built, and if its real key differs (a stale memo), the entry of the real key is used.
    """
    names = ", ".join(s.key for s in users)
    final, expected = _tokenized_target(split, key, max_length, truncation)
    manifest = check_tokenized_entry(final, expected)
    if manifest is None and tokenizer is None:
        tokenizer = registry.build_tokenizer(users[0])
        actual = tokenizer_key(tokenizer)
        memo.put("tokenizers", tokenizer_digest(users[0]), actual)
        if actual != key:  # the memo was stale: tokenize under the real key
            debug(f"tokenizer key of '{users[0].key}' is {actual}, memo said {key}")
            final, expected = _tokenized_target(split, actual, max_length, truncation)
            manifest = check_tokenized_entry(final, expected)
    if manifest is not None:
        info(f"reusing tokenized {names}: {final}")
        return TokenizedCache(final, manifest, reused=True)
    assert tokenizer is not None  # loaded above when the memo gave the key
    if tokenizer.pad_token_id is None:
        raise ImdbError(
            f"model '{users[0].key}': tokenizer '{users[0].tokenizer}' has no pad token"
        )
    encoder = Encoder(tokenizer, Tokenization(max_length, truncation))
    total = sum(int(n) for n in split.manifest["sizes"].values())

    def fill(tmp: Path) -> dict[str, Any]:
        started, cpu_started = time.perf_counter(), time.process_time()
        with progress() as bar, tokenizer_threads():
            task = bar.add_task(f"tokenizing for {names}", total=total)
            facts = _tokenize_into(
                tmp, split.path, encoder, split.entry.labels, lambda n: bar.advance(task, n)
            )
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started  # all threads of this process
        return {
            **expected,
            **facts,
            "source": split.source,
            **_dataset_facts(split.entry),
            "tokenizer_class": type(tokenizer).__name__,
            "tokenizer_sources": sources,
            "models": [s.key for s in users],
            "duplicates_dropped": split.manifest["duplicates_dropped"],
            "pad_token_id": encoder.pad_id,
            "vocab_size": len(tokenizer),  # every token id is below it (checked when read)
            "special_prefix": encoder.prefix,
            "special_suffix": encoder.suffix,
            "tokenize_seconds": round(seconds, 2),
            "tokenize_cpu_seconds": round(cpu_seconds, 2),
            "created_at": now(),
        }

    manifest, ours = build_entry(
        final, functools.partial(check_tokenized_entry, expected=expected), fill
    )
    if ours:
        info(f"tokenized {total:,} reviews for {names} in {manifest['tokenize_seconds']}s: {final}")
    else:
        info(f"another run tokenized {names} first; using {final}")
    return TokenizedCache(final, manifest, reused=not ours)


def _balance(labels: np.ndarray, names: tuple[str, ...]) -> dict[str, int]:
    """Reviews per class, by label name."""
    counts = np.bincount(labels, minlength=len(names))
    return {name: int(counts[i]) for i, name in enumerate(names)}


def _dataset_facts(entry: DatasetEntry) -> dict[str, Any]:
    """What a manifest says of its data set (manifests without them hold IMDB)."""
    return {
        "dataset": entry.name,
        # Where the entry was read from: `--dataset NAME` finds a YAML given by path again.
        "dataset_yaml": str(entry.path.resolve()),
        "labels": list(entry.labels),
        "split_policy": entry.split.describe(),
    }


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
    raw: RawData, fingerprint: str, options: SplitOptions, entry_dir: Path, entry: DatasetEntry
) -> tuple[Path, dict[str, Any], bool]:
    final = entry_dir / split_dir_name(options.seed)
    expected = _split_expected(fingerprint, options)

    def check(path: Path) -> dict[str, Any] | None:
        return check_split_entry(path, expected)

    manifest = check(final)
    if manifest is not None:
        return final, manifest, True

    def fill(tmp: Path) -> dict[str, Any]:
        split = make_split(raw, options)
        _check_not_empty(split.ids, options, entry)
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
            with atomic_path(tmp / f"{s}.parquet") as path:
                pq.write_table(table, path)
        return {
            **expected,
            "source": raw.source,
            **_dataset_facts(entry),
            "reviews_loaded": len(raw),
            "duplicate_copies": split.duplicate_copies,
            "duplicates_dropped": split.duplicates_dropped,
            "sizes": {s: len(split.ids[s]) for s in SPLITS},
            "label_balance": {s: _balance(labels[s], entry.labels) for s in SPLITS},
            "test_review_ids_sha256": ids_sha256(split.ids["test"]),
            "created_at": now(),
            "files": {s: f"{s}.parquet" for s in SPLITS},
        }

    manifest, _ = build_entry(final, check, fill)
    return final, manifest, False


def _check_not_empty(
    ids: dict[str, np.ndarray], options: SplitOptions, entry: DatasetEntry
) -> None:
    empty = [s for s in SPLITS if not len(ids[s])]
    if not empty:
        return
    total = sum(len(ids[s]) for s in SPLITS)
    how = (
        "the source gives none"
        if options.fractions is None
        else f"{total:,} reviews split {'/'.join(f'{f:g}' for f in options.fractions)}"
    )
    limit = "; raise --limit" if options.limit is not None else ""
    raise ImdbError(
        f"{entry.key('split')}: the {' and '.join(empty)} split comes out empty ({how}){limit}"
    )


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
def tokenizer_threads() -> Iterator[None]:
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
    label_names: tuple[str, ...],
    on_batch: Callable[[int], None],
) -> dict[str, Any]:
    """Write the arrays of every split into `tmp`; return the manifest's per-split facts."""
    sizes: dict[str, int] = {}
    balance: dict[str, dict[str, int]] = {}
    full_fraction: dict[str, float] = {}
    mean_length: dict[str, float] = {}
    test_sha = ""
    for split in SPLITS:
        table = read_split_table(split_dir, split)
        texts = table.column("text").to_pylist()
        review_ids = int64_column(table.column("review_id"))
        labels = int64_column(table.column("label"))
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
            save_array_atomic(tmp / array_file(split, name), array)
        sizes[split] = n
        balance[split] = _balance(labels, label_names)
        full_fraction[split] = round(full / n, 4) if n else 0.0
        mean_length[split] = round(float(lengths.mean()), 2) if n else 0.0
        if split == "test":
            test_sha = ids_sha256(review_ids)
    return {
        "sizes": sizes,
        "label_balance": balance,
        "full_length_fraction": full_fraction,
        "mean_length": mean_length,
        "test_review_ids_sha256": test_sha,
        "files": {
            array_file(s, name): {
                "dtype": np.dtype(dtype).name,
                "shape": [sizes[s], encoder.max_length] if wide else [sizes[s]],
            }
            for s in SPLITS
            for name, (dtype, wide) in ARRAYS.items()
        },
    }
