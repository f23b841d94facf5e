"""The ledger: a run's JSON record (config, data, environment, per-epoch metrics, test result).

`runs/<model>/<run-id>/ledger.json`, rewritten atomically after every epoch, is what
`compare`, `tsne`, `evaluate`, `predict` and `export` read. It is typed end to end: the
config is the run's TrainConfig, the data and environment are records below, and one
codec (records.py) reads it back, checking every field's type. Metrics are per-sample
counts and sums, never averages of batch averages.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imdb_cli.config import TrainConfig
from imdb_cli.data.encoding import Tokenization
from imdb_cli.data.entry import DEFAULT_DATASET, LEGACY_LABELS
from imdb_cli.errors import ImdbError
from imdb_cli.files import write_json_atomic
from imdb_cli.records import STRICT, decode, encode
from imdb_cli.runs import ledger_checks

# Version 2 added, each with a default for version-1 ledgers (which read as before):
# `data.dataset` and `data.labels` (IMDB and its two labels), one row of class
# probabilities per test review (P(class 1) in version 1), each epoch's `weights_sha256`
# (unchecked without), `wandb_run_id` and `wandb_last_step` (none), and the load average
# and core count in `environment` (unknown). Version 3 moved the data's `max_length` and
# `truncation` into `data.tokenization`, and added `data.tokenizer_files_sha256`. A
# ledger is always written as the newest version; an older imdb refuses it by that
# number rather than misreading it.
SCHEMA_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
LEDGER_NAME = "ledger.json"
STATUSES = ("running", "completed", "failed", "interrupted")


@dataclass
class DataRecord:
    """Which data a run trained on: the data set, its cache and split, the tokenization."""

    __pydantic_config__ = STRICT

    cache: str  # the tokenized cache's folder, as it was when the run trained
    data_fingerprint: str
    tokenizer_key: str
    split_seed: int
    tokenization: Tokenization
    sizes: dict[str, int]  # reviews per split, and `train_used`
    dataset: str = DEFAULT_DATASET  # ledgers that name none were written when IMDB was all
    labels: list[str] = field(default_factory=lambda: list(LEGACY_LABELS))
    num_classes: int | None = None
    limit_train: int | None = None
    test_review_ids_sha256: str | None = None
    # What `imdb prepare` needs to make the same cache again, should it be deleted.
    limit: int | None = None
    keep_duplicates: bool | None = None
    source: str | None = None
    dataset_yaml: str | None = None  # the data set's YAML, as prepare read it
    # sha256 of each tokenizer file in the run's encoder/ folder, checked when it loads;
    # None in ledgers written before they were recorded.
    tokenizer_files_sha256: dict[str, str] | None = None


@dataclass
class EnvironmentRecord:
    """Where and with what a run trained (unknown values are None: older ledgers lack some)."""

    __pydantic_config__ = STRICT

    python: str | None = None
    torch: str | None = None
    transformers: str | None = None
    platform: str | None = None
    device: str | None = None
    device_type: str | None = None
    precision: str | None = None
    attention: str | None = None  # the kernel --attention auto chose
    world_size: int | None = None
    torch_threads: int | None = None
    cpu_count: int | None = None
    load_average_start: float | None = None
    load_average_end: float | None = None
    hostname: str | None = None
    pid: int | None = None  # who trained it (the run lock, not this, says who trains it now)
    command: str | None = None


@dataclass
class EpochRecord:
    __pydantic_config__ = STRICT

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
    __pydantic_config__ = STRICT

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
    __pydantic_config__ = STRICT

    model: str
    run_id: str
    status: str
    config: TrainConfig
    data: DataRecord
    environment: EnvironmentRecord
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
    # The version the ledger was read in (written: always SCHEMA_VERSION).
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The ledger as written: in the newest schema, whichever it was read in."""
        document: dict[str, Any] = encode(self)
        return document | {"schema_version": SCHEMA_VERSION}

    @classmethod
    def from_dict(cls, document: dict[str, Any], where: str) -> Ledger:
        """A ledger read back from disk, every field checked: a damaged one is named, never
        half-trusted. Older schemas are brought up to this one first."""
        version = document.get("schema_version")
        if not isinstance(version, int) or isinstance(version, bool):
            if "schema_version" in document:
                raise ImdbError(
                    f"{where}: damaged ledger: field 'schema_version' should be an integer "
                    f"(got {version!r:.40})"
                )
            raise ImdbError(f"{where}: not a ledger (no schema_version)")
        if version not in READABLE_VERSIONS:
            readable = ", ".join(map(str, READABLE_VERSIONS))
            if version > SCHEMA_VERSION:
                raise ImdbError(
                    f"{where}: ledger schema {version} is newer than this imdb understands "
                    f"(it reads {readable}); upgrade imdb"
                )
            raise ImdbError(f"{where}: ledger schema {version} is not one imdb wrote")
        ledger = decode(cls, _upgraded(document, version), f"{where}: damaged ledger")
        ledger.schema_version = version
        bad = ledger.config.problems()
        if bad:
            name, why = next(iter(bad.items()))
            raise ImdbError(f"{where}: damaged ledger: field 'config.{name}' {why}")
        try:
            ledger_checks.check(ledger)  # the ledger against itself
        except ledger_checks.Contradiction as exc:
            raise ImdbError(f"{where}: damaged ledger: {exc}") from exc
        if ledger.status not in STATUSES:
            raise ImdbError(f"{where}: damaged ledger: unknown status {ledger.status!r:.40}")
        return ledger

    @property
    def dataset(self) -> str:
        """The name of the data set the run was trained on."""
        return self.data.dataset

    @property
    def label_names(self) -> list[str]:
        """The run's class names, by class id."""
        return list(self.data.labels) or list(LEGACY_LABELS)

    @property
    def tokenization(self) -> Tokenization:
        """How the run's reviews were cut into tokens (the same in training and after)."""
        return self.data.tokenization

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


def _upgraded(document: dict[str, Any], version: int) -> dict[str, Any]:
    """A ledger of an older schema in the shape of this one (the values unchanged)."""
    if version >= 3:
        return document
    document = dict(document)
    data = document.get("data")
    config = document.get("config")
    if isinstance(data, dict) and "tokenization" not in data:
        data = dict(data)
        settings = config if isinstance(config, dict) else {}
        data["tokenization"] = {
            "max_length": data.pop("max_length", settings.get("max_length")),
            "truncation": data.pop("truncation", settings.get("truncation", "head")),
        }
        # Version 1 named the sample size and kept duplicates only in the fingerprint
        # (`...-limit3000-keepdups`).
        fingerprint = str(data.get("data_fingerprint", ""))
        if data.get("limit") is None and (found := re.search(r"-limit(\d+)", fingerprint)):
            data["limit"] = int(found.group(1))
        if data.get("keep_duplicates") is None and fingerprint.endswith("-keepdups"):
            data["keep_duplicates"] = True
        document["data"] = data
    return document


def write_ledger(run_dir: Path, ledger: Ledger) -> None:
    write_json_atomic(run_dir / LEDGER_NAME, ledger.to_dict())


def read_ledger(run_dir: Path) -> Ledger:
    path = run_dir / LEDGER_NAME
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ImdbError(f"{path}: no ledger here (is this a run folder?)") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ImdbError(f"{path}: corrupt ledger ({exc})") from exc
    if not isinstance(document, dict):
        raise ImdbError(f"{path}: corrupt ledger (not a JSON object)")
    return Ledger.from_dict(document, str(path))
