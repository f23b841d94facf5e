"""Which review goes to which split: duplicates dropped, an optional seeded sample, then a
seeded split by the entry's fractions (80/10/10 for IMDB), or the source's own splits kept
(`split: given`); no text is in two splits."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from imdb_cli.data.entry import STUDY_FRACTIONS, SplitPolicy
from imdb_cli.data.sources import RawData
from imdb_cli.errors import ImdbError

SPLITS = ("train", "val", "test")
MIN_LIMIT = 10


@dataclass(frozen=True)
class SplitOptions:
    """What changes which reviews land in which split; errors name the `imdb prepare` flag.

    `fractions` (train, validation, test) come from the dataset entry; None keeps the
    source's own splits (`split: given`).
    """

    seed: int = 42
    limit: int | None = None
    keep_duplicates: bool = False
    fractions: tuple[float, float, float] | None = STUDY_FRACTIONS

    @classmethod
    def of(
        cls,
        policy: SplitPolicy,
        *,
        seed: int | None = None,
        limit: int | None = None,
        keep_duplicates: bool = False,
    ) -> SplitOptions:
        """The entry's split policy, with the seed, sample and duplicates the flags ask for."""
        return cls(
            seed=policy.seed if seed is None else seed,
            limit=limit,
            keep_duplicates=keep_duplicates,
            fractions=None if policy.given else policy.fractions,
        )

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < MIN_LIMIT:
            raise ImdbError(f"--limit must be at least {MIN_LIMIT} (got {self.limit})")
        if self.seed < 0:
            raise ImdbError(f"--seed must not be negative (got {self.seed})")

    @property
    def fingerprint_suffix(self) -> str:
        suffix = f"-limit{self.limit}" if self.limit is not None else ""
        return suffix + ("-keepdups" if self.keep_duplicates else "")


@dataclass(frozen=True)
class SplitIds:
    """Review ids per split (in split order) and what deduplication did."""

    ids: dict[str, np.ndarray]
    duplicates_dropped: int
    duplicate_copies: int  # extra copies of a text in the loaded data


def make_split(raw: RawData, options: SplitOptions) -> SplitIds:
    """Deduplicate (unless keep_duplicates), sample --limit, split by the fractions and seed
    (or keep the source's splits).

    No text is in two splits: without duplicates this is automatic (under `split: given`
    the first copy, in train, validation, test order, is the one kept); with them, all
    copies of a text form one group and a group goes to one split. `split: given` with
    duplicates kept leaves every row in the split the source gave it.
    """
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
    ids: dict[str, np.ndarray] = {}
    if options.fractions is None:
        if raw.given is None:
            raise ValueError("split: given needs the source's split of every row")
        parts = raw.given[candidates]
        for i, split in enumerate(SPLITS):
            ids[split] = candidates[parts == i]
        dropped = 0 if options.keep_duplicates else copies
        return SplitIds(ids, dropped, copies)
    _, val_fraction, test_fraction = options.fractions
    n_val, n_test = round(n * val_fraction), round(n * test_fraction)
    targets = {"train": n - n_val - n_test, "val": n_val, "test": n_test}
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


def ids_sha256(ids: np.ndarray) -> str:
    """A hash of review ids in order: two runs tested on the same reviews share it."""
    return hashlib.sha256(np.ascontiguousarray(ids, dtype="<i8").tobytes()).hexdigest()
