"""Full token counts of a run's test reviews, before truncation (for accuracy by length).

The tokenized cache keeps each review cut at the max length, so it cannot say how long a
review was. The counts are computed here from the review texts with the run's own
tokenizer (its encoder/ folder), special tokens included, so that a count <= 128 means
the review fits whole in 128 tokens. They depend only on the data set, its split and the
tokenizer, so they are kept once per (data fingerprint, split seed, tokenizer key) in
`<workdir>/analysis/lengths/` and shared by every run and max length that uses them. The
cache format itself is untouched.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from imdb_cli.console import progress
from imdb_cli.files import atomic_path
from imdb_cli.runs.run import Run
from imdb_cli.workspace import Workspace

KIND = "lengths"
SPLIT = "test"
_BATCH = 1000  # texts per tokenizer call: the fast tokenizer's threads work on each list


def counts_path(workspace: Workspace, run: Run) -> Path:
    data = run.ledger.data
    fingerprint, seed, tokenizer = data.data_fingerprint, data.split_seed, data.tokenizer_key
    return workspace.analysis / KIND / f"{fingerprint}-seed{seed}-{tokenizer}-{SPLIT}.npz"


def _read(path: Path) -> dict[int, int] | None:
    try:
        with np.load(path) as saved:
            ids, counts = saved["review_ids"], saved["token_counts"]
    except (OSError, ValueError, KeyError):
        return None  # absent or damaged: computed again
    if ids.shape != counts.shape:
        return None
    return dict(zip(ids.tolist(), counts.tolist(), strict=True))


def _write(path: Path, ids: np.ndarray, counts: np.ndarray) -> None:
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        np.savez(handle, review_ids=ids, token_counts=counts)


def count_tokens(tokenizer: object, texts: list[str], description: str) -> np.ndarray:
    """Tokens per text with the tokenizer's special tokens and no truncation."""
    from imdb_cli.data.prepare import tokenizer_threads

    warnings = getattr(tokenizer, "deprecation_warnings", None)
    if isinstance(warnings, dict):  # "sequence longer than the model": that is the point
        warnings["sequence-length-is-longer-than-the-specified-maximum"] = True
    counts = np.empty(len(texts), dtype=np.int64)
    with progress() as bar, tokenizer_threads():
        task = bar.add_task(description, total=len(texts))
        for start in range(0, len(texts), _BATCH):
            chunk = texts[start : start + _BATCH]
            encoded = tokenizer(  # type: ignore[operator]
                chunk,
                add_special_tokens=True,
                truncation=False,
                return_attention_mask=False,
                return_token_type_ids=False,
            )["input_ids"]
            counts[start : start + len(chunk)] = [len(ids) for ids in encoded]
            bar.advance(task, len(chunk))
    return counts


def full_token_counts(workspace: Workspace, run: Run) -> dict[int, int]:
    """Test review id -> its full token count under the run's tokenizer (computed once)."""
    path = counts_path(workspace, run)
    test = run.ledger.test
    wanted = [int(r) for r in test.review_ids] if test is not None else []
    known = _read(path)
    if known is not None and all(r in known for r in wanted):
        return known
    from imdb_cli.data.tokenized import load_texts
    from imdb_cli.runs.caches import cache_of_run

    cache = cache_of_run(workspace, run.ledger)
    ids, texts, _ = load_texts(cache, SPLIT)
    tokenizer = run.tokenizer()  # transformers: only when counting
    counts = count_tokens(tokenizer, texts, f"counting tokens of {len(texts):,} test reviews")
    _write(path, np.asarray(ids, dtype=np.int64), counts)
    return dict(zip(np.asarray(ids).tolist(), counts.tolist(), strict=True))
