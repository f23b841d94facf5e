"""Experiment tracking (Weights & Biases), imported only when switched on.

Every metric is logged against one x-axis, the global optimizer step, which only grows:
W&B silently drops a log whose step is smaller than one it has seen. Epoch and test
metrics use the step at which they happened.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

from imdb_cli.errors import ImdbError, first_line

DEFAULT_PROJECT = "imdb"


class Tracker(Protocol):
    def log(self, metrics: dict[str, float], step: int) -> None: ...

    def summary(self, values: dict[str, Any]) -> None: ...

    def finish(self, failed: bool = False) -> None: ...


class NoTracker:
    """Tracking switched off: every call does nothing."""

    def log(self, metrics: dict[str, float], step: int) -> None:
        pass

    def summary(self, values: dict[str, Any]) -> None:
        pass

    def finish(self, failed: bool = False) -> None:
        pass


class WandbTracker:
    def __init__(self, run: Any) -> None:
        self._run = run
        self._last_step = -1

    def log(self, metrics: dict[str, float], step: int) -> None:
        if step < self._last_step:
            # A bug in the caller, not the user's problem: fail loudly instead of letting
            # W&B drop the row silently.
            raise RuntimeError(f"W&B step went backwards ({step} after {self._last_step})")
        self._last_step = step
        self._run.log(metrics, step=step)

    def summary(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            self._run.summary[key] = value

    def finish(self, failed: bool = False) -> None:
        self._run.finish(exit_code=1 if failed else 0)


def start_tracking(
    enabled: bool, *, name: str, group: str, config: dict[str, Any], directory: Path
) -> Tracker:
    """A W&B run in project $WANDB_PROJECT (default `imdb`); $WANDB_MODE=offline works offline."""
    if not enabled:
        return NoTracker()
    try:
        import wandb
    except ImportError as exc:
        raise ImdbError("--wandb needs the wandb package: pip install 'imdb-cli[wandb]'") from exc
    directory.mkdir(parents=True, exist_ok=True)
    try:
        run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", DEFAULT_PROJECT),
            name=name,
            group=group,
            config=config,
            dir=str(directory),
            reinit="finish_previous",
        )
    except Exception as exc:  # wandb raises its own types for login/network problems
        raise ImdbError(
            f"--wandb: cannot start a W&B run ({first_line(exc)}); "
            "set WANDB_MODE=offline to log without network"
        ) from exc
    return WandbTracker(run)
