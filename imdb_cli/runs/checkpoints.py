"""Checkpoints: safetensors weights per epoch plus a training-state file for resume.

    runs/<model>/<run-id>/checkpoints/epoch_3_acc_0.8832.safetensors   weights
    runs/<model>/<run-id>/checkpoints/epoch_3.state.pt                 optimizer, RNG, step

Only safetensors and `torch.load(weights_only=True)` ever load anything: no pickles.
The ledger records each weights file's sha256 when it is written; loading checks it
(ledgers written before checksums existed load without the check). Paths read from a
ledger must stay inside its run folder.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from imdb_cli import guarded_loading
from imdb_cli.errors import ImdbError, first_line
from imdb_cli.files import file_sha256, write_atomic
from imdb_cli.model import EncoderForClassification
from imdb_cli.runs.ledger import LEDGER_NAME, Ledger
from imdb_cli.runs.run import ENCODER_DIR, Run

CHECKPOINT_DIR = "checkpoints"


def checkpoint_name(epoch: int, val_acc: float) -> str:
    return f"epoch_{epoch}_acc_{val_acc:.4f}.safetensors"


def state_path(run_dir: Path, epoch: int) -> Path:
    return run_dir / CHECKPOINT_DIR / f"epoch_{epoch}.state.pt"


_PICKLE_STARTS = (b"PK\x03\x04", b"\x80")  # torch.save's zip archive; a bare pickle


def is_pickle(path: Path) -> bool:
    """Whether a file starts as torch.save's or pickle's output (a safetensors file starts
    with the 8-byte length of its JSON header, then `{`)."""
    with path.open("rb") as handle:
        start = handle.read(9)
    return start.startswith(_PICKLE_STARTS) and start[8:9] != b"{"


def save_weights(model: torch.nn.Module, path: Path) -> str:
    """Write the weights atomically; their sha256, for the ledger."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    checksum = ""

    def write(tmp: Path) -> None:
        nonlocal checksum
        save_file(tensors, str(tmp), metadata={"format": "pt"})
        checksum = file_sha256(tmp)

    write_atomic(path, write)
    return checksum


def read_weights(path: Path, sha256: str | None = None) -> dict[str, torch.Tensor]:
    """The tensors of a weights file; with `sha256`, only if the file still has it."""
    if not path.is_file():
        raise ImdbError(f"checkpoint {path} does not exist")
    if is_pickle(path):
        raise ImdbError(
            f"checkpoint {path} is a pickle (torch.save), not safetensors; refused: imdb never "
            "unpickles weights"
        )
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ImdbError(f"checkpoint {path} is corrupt or truncated ({first_line(exc)})") from exc
    if sha256 is not None and file_sha256(path) != sha256:  # damage a reader cannot see
        raise ImdbError(
            f"checkpoint {path} is damaged: its sha256 differs from the one its ledger "
            "recorded when it was written"
        )
    return tensors


def load_weights(model: torch.nn.Module, path: Path, sha256: str | None = None) -> None:
    tensors = read_weights(path, sha256)
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


def in_run(run_dir: Path, relative: str) -> Path:
    """The file a ledger names (relative to its run folder); refused if it lies outside."""
    path = run_dir / relative
    inside = run_dir.resolve()
    if Path(relative).is_absolute() or not path.resolve().is_relative_to(inside):
        raise ImdbError(
            f"{run_dir / LEDGER_NAME}: checkpoint '{relative}' lies outside the run folder; refused"
        )
    return path


def recorded_sha256(run_dir: Path, ledger: Ledger, path: Path) -> str | None:
    """The checksum the ledger recorded for weights file `path` (None: not recorded)."""
    target = path.resolve()
    for record in ledger.epochs:
        if (run_dir / record.checkpoint).resolve() == target:
            return record.weights_sha256
    return None


def save_train_state(path: Path, state: dict[str, Any]) -> None:
    def write(tmp: Path) -> None:
        # Through a Python file object: a full disk then surfaces as OSError(ENOSPC),
        # where torch's own writer only says "unexpected pos".
        with tmp.open("wb") as handle:
            torch.save(state, handle)

    write_atomic(path, write)


def load_train_state(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ImdbError(f"training state {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # Not torch's message: it advises loading the file with weights_only=False, which
        # would run whatever the pickle names.
        raise ImdbError(
            f"training state {path} holds pickled Python objects other than tensors; refused: "
            "imdb loads training state with torch.load(weights_only=True) only"
        ) from exc
    except Exception as exc:  # torch raises many types for a bad file
        raise ImdbError(
            f"training state {path} is corrupt or truncated ({first_line(exc)})"
        ) from exc
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
        return in_run(run.path, record.checkpoint)
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
    config = guarded_loading.load_config(encoder_dir)
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    encoder = guarded_loading.model_from_config(config, encoder_dir / "config.json", **kwargs)
    model = EncoderForClassification(encoder, len(run.ledger.label_names))
    path = checkpoint_path(run, checkpoint)
    load_weights(model, path, recorded_sha256(run.path, run.ledger, path))
    model.eval()
    return model, path
