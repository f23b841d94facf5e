"""The ledger: a run's JSON record (config, environment, per-epoch metrics, test result).

`runs/<model>/<run-id>/ledger.json`, rewritten atomically after every epoch, is what
`compare`, `tsne` and `evaluate` read. Metrics are per-sample counts and sums, never
averages of batch averages.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imdb_cli.errors import ImdbError
from imdb_cli.files import write_json_atomic

SCHEMA_VERSION = 1
LEDGER_NAME = "ledger.json"
STATUSES = ("running", "completed", "failed", "interrupted")
# Ledgers that name no labels were written when IMDB was the only data set.
IMDB_LABELS = ("negative", "positive")


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
    data: dict[str, Any]  # cache path, data fingerprint, split seed, max length, sizes, ...
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
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> Ledger:
        version = data.get("schema_version")
        if not isinstance(version, int):
            raise ImdbError(f"{where}: not a ledger (no schema_version)")
        if version > SCHEMA_VERSION:
            raise ImdbError(
                f"{where}: ledger schema {version} is newer than this imdb understands "
                f"({SCHEMA_VERSION}); upgrade imdb"
            )
        try:
            values = dict(data)
            values["epochs"] = [EpochRecord(**e) for e in data.get("epochs", [])]
            if data.get("test") is not None:
                values["test"] = TestRecord(**data["test"])
            ledger = cls(**values)
        except TypeError as exc:
            raise ImdbError(f"{where}: ledger is missing or has unknown fields ({exc})") from exc
        if ledger.status not in STATUSES:
            raise ImdbError(f"{where}: unknown status {ledger.status!r}")
        return ledger

    @property
    def label_names(self) -> list[str]:
        """The run's class names, by class id."""
        names = self.data.get("labels")
        return [str(n) for n in names] if isinstance(names, list) and names else list(IMDB_LABELS)

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
