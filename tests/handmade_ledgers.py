"""Ledgers written by hand, the way the engine writes them: compare reads nothing else."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imdb_cli.config import TrainConfig
from imdb_cli.data.encoding import Tokenization
from imdb_cli.runs.ledger import (
    DataRecord,
    EnvironmentRecord,
    EpochRecord,
    Ledger,
    TestRecord,
    write_ledger,
)
from imdb_cli.workspace import Workspace

FINGERPRINT = "a1b2c3d4e5f6-limit400"
ENVIRONMENT = {
    "torch": "2.13.0",
    "device": "cpu (x86_64, 1 thread)",
    "device_type": "cpu",
    "precision": "fp32",
    "torch_threads": 1,
    "hostname": "testhost",
}


def probs_for(labels: Sequence[int], right: Sequence[bool]) -> list[float]:
    """P(positive) per review: confident and correct where `right`, confidently wrong elsewhere."""
    return [
        (0.9 if label == 1 else 0.1) if ok else (0.2 if label == 1 else 0.8)
        for label, ok in zip(labels, right, strict=True)
    ]


def write_run(
    workspace: Workspace,
    model: str,
    run_id: str,
    *,
    labels: Sequence[int] = (),
    right: Sequence[bool] = (),
    review_ids: Sequence[int] | None = None,
    status: str = "completed",
    seed: int = 42,
    split_seed: int = 42,
    fingerprint: str = FINGERPRINT,
    created_at: str = "2026-01-01T00:00:00+00:00",
    best_val_acc: float = 0.9,
    best_epoch: int = 1,
    epochs: int = 1,
    parameters: int = 22_700_000,
    train_seconds: float = 120.0,
    train_samples: int = 2400,
    config: dict[str, Any] | None = None,
    tested: bool = True,
    error: str | None = None,
    environment: dict[str, Any] | None = None,
    probs: Sequence[Sequence[float]] | None = None,
    label_names: Sequence[str] | None = None,
    curve: Sequence[tuple[float, float, float, float]] | None = None,
    data: dict[str, Any] | None = None,
) -> Path:
    """Write runs/<model>/<run_id>/ledger.json with a test of `len(labels)` reviews.

    `probs`: each review's class probabilities (any number of classes), instead of the
    two-class P(class 1) that `right` makes; `curve`: (train loss, train acc, val loss,
    val acc) per epoch; `data`: the data record's cache and tokenizer_key (a real cache's)."""
    run_dir = workspace.model_runs(model) / run_id
    run_dir.mkdir(parents=True)
    ids = list(review_ids) if review_ids is not None else list(range(len(labels)))
    n = len(labels)
    if probs is None:
        flat = probs_for(labels, right)
        rows = [[1 - p, p] for p in flat]
        stored: list[float] | list[list[float]] = flat
    else:
        rows = [list(map(float, row)) for row in probs]
        stored = rows
    hits = [
        max(range(len(row)), key=row.__getitem__) == y for row, y in zip(rows, labels, strict=True)
    ]
    test = None
    if tested and status == "completed":
        loss = -sum(math.log(row[y]) for row, y in zip(rows, labels, strict=True))
        test = TestRecord(
            epoch=best_epoch,
            checkpoint=f"checkpoints/epoch_{best_epoch}_acc_{best_val_acc:.4f}.safetensors",
            split="test",
            loss=loss / n,
            acc=sum(hits) / n,
            samples=n,
            seconds=3.0,
            review_ids=ids,
            labels=list(labels),
            probs=stored,
        )
    points = (
        list(curve)
        if curve is not None
        else [
            (0.4, 0.8, 0.3, best_val_acc if e == best_epoch else best_val_acc - 0.01)
            for e in range(1, epochs + 1)
        ]
    )
    if curve is not None:  # the best epoch's validation accuracy is the one the curve shows
        best_val_acc = points[best_epoch - 1][3]
    records = [
        EpochRecord(
            epoch=e,
            train_loss=train_loss,
            train_acc=train_acc,
            train_samples=train_samples,
            val_loss=val_loss,
            val_acc=val_acc,
            val_samples=300,
            checkpoint=f"checkpoints/epoch_{e}_acc_{val_acc:.4f}.safetensors",
            train_seconds=train_seconds / epochs,
            eval_seconds=2.0,
            train_samples_per_s=train_samples * epochs / train_seconds,
            lr=1e-4,
        )
        for e, (train_loss, train_acc, val_loss, val_acc) in enumerate(points, start=1)
    ]
    # The whole config, as the engine records it (a TrainConfig).
    settings = {"epochs": epochs, "lr": 1e-4, "device": "cpu", **(config or {}), "seed": seed}
    ledger = Ledger(
        model=model,
        run_id=run_id,
        status=status,
        config=TrainConfig(**settings),
        data=DataRecord(
            **{
                "cache": str(
                    workspace.cache / fingerprint / "berttokenizer-0123456789-len128-seed42"
                ),
                "tokenizer_key": "berttokenizer-0123456789",
                **(data or {}),
            },
            data_fingerprint=fingerprint,
            split_seed=split_seed,
            tokenization=Tokenization(128, "head"),
            sizes={"train": train_samples, "val": 300, "test": n, "train_used": train_samples},
            test_review_ids_sha256="sha-" + "-".join(map(str, ids))[:40],
            limit=int(found.group(1))
            if (found := re.search(r"-limit(\d+)", fingerprint))
            else None,
            **({"labels": list(label_names)} if label_names is not None else {}),
        ),
        environment=EnvironmentRecord(**{**ENVIRONMENT, **(environment or {})}),
        parameters=parameters,
        created_at=created_at,
        updated_at=created_at,
        epochs=records,
        best_epoch=best_epoch if records else None,
        best_val_acc=best_val_acc if records else None,
        test=test,
        error=error,
        total_seconds=train_seconds + 10,
    )
    write_ledger(run_dir, ledger)
    return run_dir
