"""A new run's folder: runs/<model>/<run-id>/ with config.yaml, encoder/ (the encoder's
config and tokenizer, so the run loads offline) and its first ledger; and train.log."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import yaml

from imdb_cli.config import ModelSpec, TrainConfig
from imdb_cli.data.encoding import Tokenization
from imdb_cli.data.tokenized import TokenizedCache
from imdb_cli.files import open_no_follow, write_text_atomic
from imdb_cli.model import EncoderForClassification
from imdb_cli.runs.ledger import DataRecord, EnvironmentRecord, Ledger
from imdb_cli.runs.run import CONFIG_NAME, ENCODER_DIR, new_run_id, now_iso, tokenizer_files_sha256
from imdb_cli.training.distributed import Distributed, from_rank0
from imdb_cli.workspace import Workspace

LOG_NAME = "train.log"


def create_run(
    workspace: Workspace,
    spec: ModelSpec,
    config: TrainConfig,
    *,
    model: EncoderForClassification,
    tokenizer: Any,
    cache: TokenizedCache,
    train_reviews: int,
    environment: EnvironmentRecord,
    run_name: str | None,
    world: Distributed,
) -> tuple[Path, Ledger]:
    """Rank 0 makes the folder; every rank gets its path and the same new ledger."""
    run_id, tokenizer_files = "", {}
    if world.main:
        run_id = new_run_id(workspace, spec.key, run_name, config.seed)
        run_dir = workspace.model_runs(spec.key) / run_id
        run_dir.mkdir(parents=True)
        write_config_yaml(run_dir, spec, config)
        encoder_config: Any = model.encoder.config
        encoder_config.save_pretrained(run_dir / ENCODER_DIR)
        # The tokenizer's identity: checked whenever the run's tokenizer is loaded again.
        tokenizer_files = tokenizer_files_sha256(tokenizer.save_pretrained(run_dir / ENCODER_DIR))
    run_id, tokenizer_files = from_rank0(world, (run_id, tokenizer_files))
    created = now_iso()
    data = data_record(cache, train_reviews, config.limit_train)
    data.tokenizer_files_sha256 = tokenizer_files
    ledger = Ledger(
        model=spec.key,
        run_id=run_id,
        status="running",
        config=config,
        data=data,
        environment=environment,
        parameters=sum(p.numel() for p in model.parameters()),
        created_at=created,
        updated_at=created,
    )
    return workspace.model_runs(spec.key) / run_id, ledger


def data_record(cache: TokenizedCache, train_reviews: int, limit_train: int | None) -> DataRecord:
    """The ledger's data section: which data set and cache, and how much of its train split
    was used."""
    manifest = cache.manifest
    return DataRecord(
        dataset=cache.dataset,
        labels=list(cache.label_names),
        num_classes=len(cache.label_names),
        cache=str(cache.path.resolve()),
        data_fingerprint=cache.data_fingerprint,
        tokenizer_key=cache.tokenizer_key,
        split_seed=cache.seed,
        tokenization=Tokenization(cache.max_length, cache.truncation),
        sizes={**cache.sizes(), "train_used": train_reviews},
        limit_train=limit_train,
        test_review_ids_sha256=manifest.get("test_review_ids_sha256"),
        limit=manifest.get("limit"),
        keep_duplicates=manifest.get("keep_duplicates"),
        source=manifest.get("source"),
        dataset_yaml=manifest.get("dataset_yaml"),
    )


def write_config_yaml(run_dir: Path, spec: ModelSpec, config: TrainConfig) -> None:
    document = {
        "name": spec.key,
        "description": spec.description,
        "pretrained": spec.pretrained,
        "architecture": spec.architecture,
        "tokenizer": spec.tokenizer,
        "training": config.to_dict(),
    }
    write_text_atomic(run_dir / CONFIG_NAME, yaml.safe_dump(document, sort_keys=False))


class RunLog:
    """train.log: plain text lines beside the ledger, appended (a resumed run adds to it)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        # Appended without following a link: a train.log planted as a link to a file outside
        # the workspace is refused, not written.
        fd = open_no_follow(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        with os.fdopen(fd, "a", encoding="utf-8") as handle:
            handle.write(f"{stamp} {message}\n")
