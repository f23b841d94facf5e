"""Which prepared data a new run uses: the newest entry that fits the model, the one `--data`
names, or one prepared on request (`--prepare`). (The data an existing run was trained on:
runs/caches.py.)"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from imdb_cli.config import Invocation, ModelSpec
from imdb_cli.console import info, warn
from imdb_cli.data.encoding import tokenizer_key
from imdb_cli.data.entry import DEFAULT_DATASET, DatasetEntry
from imdb_cli.data.prepare import prepare
from imdb_cli.data.sources import DataSource
from imdb_cli.data.split import SplitOptions
from imdb_cli.data.store import (
    FORMAT_VERSION,
    check_tokenized_entry,
    parse_tokenized_dir_name,
    read_manifest,
    split_dir_name,
)
from imdb_cli.data.tokenized import TokenizedCache
from imdb_cli.errors import ImdbError
from imdb_cli.workspace import Workspace

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def data_set_asked(dataset: str | None, fingerprint: str | None) -> str | None:
    """The data set whose caches a run may take: the one given (`--dataset`); else, when the
    prepared data is named (`--data`), whichever it holds (None); else IMDB."""
    if dataset is not None:
        return dataset
    return None if fingerprint is not None else DEFAULT_DATASET


def find_tokenized_cache(
    workspace: Workspace,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    truncation: str = "head",
    *,
    seed: int | None = None,
    model: str | None = None,
    fingerprint: str | None = None,
    dataset: str | None = DEFAULT_DATASET,
) -> TokenizedCache:
    """The most recently created valid entry of `dataset` for this tokenizer, length and
    truncation (of the prepared data `fingerprint` when given: `imdb train --data`; that
    names its data set, so `dataset` None takes it whichever it is)."""
    key = tokenizer_key(tokenizer)
    found: list[TokenizedCache] = []
    if workspace.cache.is_dir():
        for entry in workspace.cache.glob(f"*/{key}-len{max_length}-seed*"):
            name = parse_tokenized_dir_name(entry.name)
            if name is None or (name.key, name.truncation) != (key, truncation):
                continue
            if seed is not None and name.seed != seed:
                continue
            if fingerprint is not None and entry.parent.name != fingerprint:
                continue
            manifest = check_tokenized_entry(
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
    elsewhere = [c for c in found if dataset not in (None, c.dataset)]
    found = [c for c in found if dataset in (None, c.dataset)]
    if not found and fingerprint is not None and elsewhere:
        raise ImdbError(
            f"--data {fingerprint} holds the data set '{elsewhere[0].dataset}', not "
            f"'{dataset}'; add --dataset {elsewhere[0].dataset}"
        )
    if not found:
        options: list[tuple[str, Any]] = [
            ("models", model or "MODEL"),
            ("max_length", max_length),
        ]
        if truncation != "head":
            options.append(("truncation", truncation))
        if seed is not None and seed != 42:
            options.append(("seed", seed))
        if dataset not in (None, DEFAULT_DATASET):
            options.append(("dataset", dataset))
        command = Invocation("prepare", options=tuple(options), workdir=workspace.as_option())
        of_data = f" in cache/{fingerprint}" if fingerprint is not None else ""
        what = f"tokenized {dataset} data" if dataset else "tokenized data"
        raise ImdbError(
            f"no {what}{of_data} for {'model ' + repr(model) if model else 'this tokenizer'} "
            f"at max length {max_length} ({truncation} truncation) in {workspace.cache}; "
            f"run `{command}` first"
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


def cache_for_run(
    workspace: Workspace,
    spec: ModelSpec,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    truncation: str,
    *,
    dataset: DatasetEntry | None,
    recorded: TokenizedCache | None = None,
    pinned: TokenizedCache | None = None,
    prepare_source: DataSource | None = None,
    fingerprint: str | None = None,
) -> TokenizedCache:
    """The data a training run reads, checked against its tokenizer, length and truncation.

    A resumed run reads the cache its ledger names (`recorded`); `pinned` is a cache the
    caller chose (`imdb reproduce` passes the one it just prepared); otherwise the newest entry of
    `dataset` that fits (IMDB when None), or the prepared data `fingerprint` names (of
    `dataset` when given), prepared from `prepare_source` if missing.
    """
    if recorded is not None:
        if pinned is not None and pinned.data_fingerprint != recorded.data_fingerprint:
            raise ImdbError(
                f"the run was trained on data {recorded.data_fingerprint}, not on {pinned.path}"
            )
        cache = recorded
    elif pinned is not None:
        if pinned.tokenizer_key != tokenizer_key(tokenizer):
            raise ImdbError(
                f"cache {pinned.path} was tokenized for another tokenizer than {spec.key}'s"
            )
        cache = pinned
    else:
        cache = _find_or_prepare(
            workspace, spec, tokenizer, max_length, truncation, dataset, prepare_source, fingerprint
        )
    if (cache.max_length, cache.truncation) != (max_length, truncation):
        raise ImdbError(
            f"cache {cache.path} holds {cache.max_length} tokens ({cache.truncation} "
            f"truncation); the run wants --max-length {max_length} ({truncation})"
        )
    return cache


def _find_or_prepare(
    workspace: Workspace,
    spec: ModelSpec,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    truncation: str,
    dataset: DatasetEntry | None,
    prepare_source: DataSource | None,
    fingerprint: str | None,
) -> TokenizedCache:
    name = data_set_asked(dataset.name if dataset is not None else None, fingerprint)
    try:
        return find_tokenized_cache(
            workspace,
            tokenizer,
            max_length,
            truncation,
            model=spec.key,
            fingerprint=fingerprint,
            dataset=name,
        )
    except ImdbError as exc:
        if fingerprint is not None:
            raise
        if prepare_source is None:
            raise ImdbError(f"{exc.message} (or add --prepare to `imdb train`)") from exc
    entry = prepare_source.entry
    options = _options_of_newest_data_set(workspace, entry)
    same = " with the split options of the newest prepared data" if options else ""
    info(
        f"no tokenized {entry.name} data for {spec.key} yet: preparing it from "
        f"{prepare_source.describe()}{same}"
    )
    options = options or SplitOptions.of(entry.split)
    result = prepare(workspace, [spec], prepare_source, options, max_length, truncation)
    return result.caches[spec.key]


def _options_of_newest_data_set(workspace: Workspace, entry: DatasetEntry) -> SplitOptions | None:
    """The split options (seed, --limit, --keep-duplicates) of the newest split of `entry`'s
    data set prepared in the workspace: `train --prepare` for another model tokenizes the
    same reviews, rather than quietly preparing (and training on) different ones."""
    newest: dict[str, Any] | None = None
    if workspace.cache.is_dir():
        for folder in workspace.cache.glob("*/split-seed*"):
            manifest = read_manifest(folder)
            if manifest is None or manifest.get("kind") != "split":
                continue
            if manifest.get("dataset", DEFAULT_DATASET) != entry.name:
                continue
            if newest is None or str(manifest.get("created_at", "")) > str(
                newest.get("created_at", "")
            ):
                newest = manifest
    if newest is None:
        return None
    limit = newest.get("limit")
    return SplitOptions.of(
        entry.split,
        seed=int(newest.get("seed", entry.split.seed)),
        limit=int(limit) if limit is not None else None,
        keep_duplicates=bool(newest.get("keep_duplicates", False)),
    )
