"""Checkpoints: safetensors weights per epoch plus a training-state file for resume.

    runs/<model>/<run-id>/checkpoints/epoch_3_acc_0.8832.safetensors   weights
    runs/<model>/<run-id>/checkpoints/epoch_3.state.pt                 optimizer, RNG, step

Only safetensors and `torch.load(weights_only=True)` ever load anything: no pickles.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedTokenizerBase

from imdb_cli.errors import ImdbError
from imdb_cli.files import write_atomic
from imdb_cli.model import EncoderForClassification
from imdb_cli.runs import ENCODER_DIR, Run

CHECKPOINT_DIR = "checkpoints"


def checkpoint_name(epoch: int, val_acc: float) -> str:
    return f"epoch_{epoch}_acc_{val_acc:.4f}.safetensors"


def state_path(run_dir: Path, epoch: int) -> Path:
    return run_dir / CHECKPOINT_DIR / f"epoch_{epoch}.state.pt"


def save_weights(model: torch.nn.Module, path: Path) -> None:
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    write_atomic(path, lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ImdbError(f"checkpoint {path} does not exist")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ImdbError(f"checkpoint {path} is corrupt or truncated ({exc})") from exc


def load_weights(model: torch.nn.Module, path: Path) -> None:
    tensors = read_weights(path)
    expected = set(model.state_dict())
    missing, unexpected = expected - set(tensors), set(tensors) - expected
    if missing or unexpected:
        raise ImdbError(
            f"checkpoint {path} does not fit this model "
            f"({len(missing)} missing, {len(unexpected)} unexpected tensors)"
        )
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise ImdbError(f"checkpoint {path} does not fit this model (shapes differ)") from exc


def save_train_state(path: Path, state: dict[str, Any]) -> None:
    write_atomic(path, lambda tmp: torch.save(state, tmp))


def load_train_state(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ImdbError(f"training state {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise ImdbError(f"training state {path} is corrupt or truncated ({exc})") from exc
    if not isinstance(state, dict):
        raise ImdbError(f"training state {path} is not a dict")
    return state


def checkpoint_path(run: Run, checkpoint: str = "best") -> Path:
    """`best` (the ledger's best-validation epoch), `last`, or a path."""
    ledger = run.ledger
    if checkpoint in ("best", "last"):
        if not ledger.epochs:
            raise ImdbError(f"run {run.describe()} has no checkpoint yet")
        if checkpoint == "best" and ledger.best_epoch is not None:
            record = ledger.epoch(ledger.best_epoch)
        else:
            record = ledger.epochs[-1]
        return run.path / record.checkpoint
    path = Path(checkpoint)
    if not path.is_absolute() and not path.exists():
        path = run.path / checkpoint
    if not path.is_file():
        raise ImdbError(f"--checkpoint {checkpoint}: no such file")
    return path


def load_classifier(
    run: Run, checkpoint: str = "best", attn_implementation: str | None = None
) -> tuple[EncoderForClassification, Path]:
    """Rebuild a run's model from the config saved in the run (no download) and load weights.

    `attn_implementation="eager"` gives a copy that can return attention maps.
    """
    encoder_dir = run.path / ENCODER_DIR
    if not (encoder_dir / "config.json").is_file():
        raise ImdbError(f"run {run.path} has no {ENCODER_DIR}/config.json (incomplete run?)")
    config = AutoConfig.from_pretrained(encoder_dir)
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    encoder = AutoModel.from_config(config, **kwargs)
    model = EncoderForClassification(encoder)
    path = checkpoint_path(run, checkpoint)
    load_weights(model, path)
    model.eval()
    return model, path


def load_run_tokenizer(run: Run) -> PreTrainedTokenizerBase:
    try:
        return AutoTokenizer.from_pretrained(run.path / ENCODER_DIR)
    except (OSError, ValueError) as exc:
        raise ImdbError(f"run {run.path}: cannot load its tokenizer ({exc})") from exc
