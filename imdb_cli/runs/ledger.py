"""The ledger: a run's JSON record (config, environment, per-epoch metrics, test result).

`runs/<model>/<run-id>/ledger.json`, rewritten atomically after every epoch, is what
`compare`, `tsne` and `evaluate` read. Metrics are per-sample counts and sums, never
averages of batch averages.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from imdb_cli.data.entry import DEFAULT_DATASET, LEGACY_LABELS
from imdb_cli.errors import ImdbError
from imdb_cli.files import write_json_atomic
from imdb_cli.runs import ledger_checks

# Version 2 added, each with a default for version-1 ledgers (which read as before):
# `data.dataset` and `data.labels` (IMDB and its two labels), one row of class
# probabilities per test review (P(class 1) in version 1), each epoch's `weights_sha256`
# (unchecked without), `wandb_run_id` and `wandb_last_step` (none), and the load average
# and core count in `environment` (unknown). A ledger is always written as the newest
# version; an older imdb refuses it by that number rather than misreading it.
SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
LEDGER_NAME = "ledger.json"
STATUSES = ("running", "completed", "failed", "interrupted")
# `data` key: file name -> sha256 of each tokenizer file the run saved in its encoder/
# folder, checked when the run's tokenizer is loaded (runs made before it have none).
TOKENIZER_FILES_SHA256 = "tokenizer_files_sha256"


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    train_acc: float
    train_samples: int
    val_loss: float
    val_acc: float
    val_samples: int
    checkpoint: str  # relative to the run folder
    train_seconds: float
    eval_seconds: float
    train_samples_per_s: float
    lr: float
    # sha256 of the weights file, checked when it is loaded; None in ledgers written
    # before checksums were recorded.
    weights_sha256: str | None = None


@dataclass
class TestRecord:
    epoch: int
    checkpoint: str
    split: str
    loss: float
    acc: float
    samples: int
    seconds: float
    # One entry per test review, in split order: what compare (McNemar) and tsne need.
    review_ids: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    # Per review, the probability of each class; ledgers of two-class runs may hold
    # P(class 1) per review instead. Read them through prob_matrix().
    probs: list[list[float]] | list[float] = field(default_factory=list)

    def prob_matrix(self) -> np.ndarray:
        """[reviews, classes] float64: one row of class probabilities per test review."""
        probs = np.asarray(self.probs, dtype=np.float64)
        if probs.ndim == 1:  # P(class 1) of a two-class run
            return np.stack([1.0 - probs, probs], axis=1)
        return probs.reshape(len(self.probs), -1)

    def predicted(self) -> np.ndarray:
        """The predicted class of each test review (int64)."""
        return self.prob_matrix().argmax(axis=1).astype(np.int64)


@dataclass
class Ledger:
    model: str
    run_id: str
    status: str
    config: dict[str, Any]
    # Data set name, label names, cache path, data fingerprint, split seed, max length, sizes...
    data: dict[str, Any]
    environment: dict[str, Any]
    parameters: int
    created_at: str
    updated_at: str
    epochs: list[EpochRecord] = field(default_factory=list)
    best_epoch: int | None = None
    best_val_acc: float | None = None
    test: TestRecord | None = None
    error: str | None = None
    total_seconds: float = 0.0
    # The run's W&B run (`--wandb`), which a resumed run continues, and the last step
    # logged to it; None without W&B.
    wandb_run_id: str | None = None
    wandb_last_step: int | None = None
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The ledger as written: in the newest schema, whichever it was read in."""
        return asdict(self) | {"schema_version": SCHEMA_VERSION}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> Ledger:
        """A ledger read back from disk, every field checked: a damaged one is named, never
        half-trusted."""
        version = data.get("schema_version")
        if version is None:
            raise ImdbError(f"{where}: not a ledger (no schema_version)")
        try:
            ledger_checks.check_schema_version(version)
        except ledger_checks.Contradiction as exc:
            raise ImdbError(f"{where}: damaged ledger: {exc}") from exc
        if version not in READABLE_VERSIONS:
            readable = " and ".join(map(str, READABLE_VERSIONS))
            if version > SCHEMA_VERSION:
                raise ImdbError(
                    f"{where}: ledger schema {version} is newer than this imdb understands "
                    f"(it reads {readable}); upgrade imdb"
                )
            raise ImdbError(f"{where}: ledger schema {version} is not one imdb wrote")
        try:
            values = _checked(cls, data, "")
            values["epochs"] = [
                EpochRecord(**_checked(EpochRecord, e, f"epochs[{i}]."))
                for i, e in enumerate(data.get("epochs", []))
            ]
            if data.get("test") is not None:
                values["test"] = TestRecord(**_checked(TestRecord, data["test"], "test."))
            ledger = cls(**values)
            _check_data_types(ledger)
            ledger_checks.check(ledger)  # the ledger against itself
        except (_Damaged, ledger_checks.Contradiction) as exc:
            raise ImdbError(f"{where}: damaged ledger: {exc}") from exc
        if ledger.status not in STATUSES:
            raise ImdbError(f"{where}: damaged ledger: unknown status {ledger.status!r}")
        return ledger

    @property
    def dataset(self) -> str:
        """The name of the data set the run was trained on (ledgers that name none were
        written when IMDB was the only one)."""
        return str(self.data.get("dataset", DEFAULT_DATASET))

    @property
    def label_names(self) -> list[str]:
        """The run's class names, by class id."""
        names = self.data.get("labels")
        return [str(n) for n in names] if isinstance(names, list) and names else list(LEGACY_LABELS)

    def epoch(self, number: int) -> EpochRecord:
        for record in self.epochs:
            if record.epoch == number:
                return record
        raise ImdbError(f"run {self.run_id} has no epoch {number}")

    @property
    def train_seconds(self) -> float:
        return sum(e.train_seconds for e in self.epochs)

    @property
    def train_samples_per_s(self) -> float:
        seconds = self.train_seconds
        return sum(e.train_samples for e in self.epochs) / seconds if seconds else 0.0


def write_ledger(run_dir: Path, ledger: Ledger) -> None:
    write_json_atomic(run_dir / LEDGER_NAME, ledger.to_dict())


def read_ledger(run_dir: Path) -> Ledger:
    path = run_dir / LEDGER_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ImdbError(f"{path}: no ledger here (is this a run folder?)") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ImdbError(f"{path}: corrupt ledger ({exc})") from exc
    if not isinstance(data, dict):
        raise ImdbError(f"{path}: corrupt ledger (not a JSON object)")
    return Ledger.from_dict(data, str(path))


# --------------------------------------------------------------------------- checks on read


class _Damaged(Exception):
    """A field of a ledger read back from disk has the wrong type or an impossible value."""


def _is(value: Any, hint: str) -> bool:
    """Whether a JSON value fits a field's annotation (the few forms ledgers use)."""
    hint = hint.strip()
    if " | " in hint:
        return any(_is(value, part) for part in _split_union(hint))
    if hint == "None":
        return value is None
    if hint == "Any":
        return True
    if hint == "str":
        return isinstance(value, str)
    if hint == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if hint == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint.startswith("dict["):
        return isinstance(value, dict)
    if hint.startswith("list[") and hint.endswith("]"):
        inner = hint[len("list[") : -1]
        if inner in ("EpochRecord", "TestRecord"):
            return isinstance(value, list)
        return isinstance(value, list) and all(_is(v, inner) for v in value)
    if hint in ("EpochRecord", "TestRecord"):
        return isinstance(value, dict)
    raise AssertionError(f"ledger field annotation {hint!r} has no check")  # a bug, not data


def _split_union(hint: str) -> list[str]:
    """`list[list[float]] | list[float] | None` -> its alternatives (brackets respected)."""
    parts, depth, current = [], 0, ""
    for char in hint:
        depth += char == "["
        depth -= char == "]"
        if char == "|" and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def _checked(kind: type, values: Any, prefix: str) -> dict[str, Any]:
    """`values` as keyword arguments of dataclass `kind`, each field's type checked."""
    if not isinstance(values, dict):
        raise _Damaged(f"'{prefix.rstrip('.') or 'ledger'}' is not a JSON object")
    known = {f.name: f for f in fields(kind)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise _Damaged(f"unknown field(s) {', '.join(prefix + u for u in unknown)}")
    for name, spec in known.items():
        if name not in values:
            if spec.default is MISSING and spec.default_factory is MISSING:
                raise _Damaged(f"field '{prefix}{name}' is missing")
            continue
        if not _is(values[name], str(spec.type)):
            shown = repr(values[name])
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            raise _Damaged(f"field '{prefix}{name}' should be {spec.type} (got {shown})")
    return dict(values)


# Types of the `data` entries other code reads (other entries pass as they are).
_DATA_FIELDS = {
    "cache": "str",
    "data_fingerprint": "str",
    "tokenizer_key": "str",
    "split_seed": "int",
    "max_length": "int",
    "truncation": "str",
    "sizes": "dict[str, int]",
    "limit_train": "int | None",
    "labels": "list[str]",
    TOKENIZER_FILES_SHA256: "dict[str, str]",
}


def _check_data_types(ledger: Ledger) -> None:
    for name, hint in _DATA_FIELDS.items():
        if name in ledger.data and not _is(ledger.data[name], hint):
            raise _Damaged(f"field 'data.{name}' should be {hint} (got {ledger.data[name]!r})")
