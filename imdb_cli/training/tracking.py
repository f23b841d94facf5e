"""Experiment tracking (Weights & Biases), imported only when switched on.

Every metric is logged against one x-axis, the global optimizer step, which only grows:
W&B silently drops a log whose step is smaller than one it has seen. Epoch and test
metrics use the step at which they happened.

A resumed run continues its own W&B run (the id its ledger keeps, `resume="allow"`). It
restarts from its last complete epoch, so steps the killed session had already logged come
again: those are not logged twice, and the step stays one increasing axis.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

from imdb_cli.errors import ImdbError, first_line, install_hint

DEFAULT_PROJECT = "imdb"


class Tracker(Protocol):
    @property
    def run_id(self) -> str | None:
        """The W&B run's id (None: not tracking)."""

    @property
    def last_step(self) -> int | None:
        """The largest step logged so far, in this session or an earlier one."""

    def log(self, metrics: dict[str, float], step: int) -> None: ...

    def summary(self, values: dict[str, Any]) -> None: ...

    def finish(self, failed: bool = False) -> None: ...


class NoTracker:
    """Tracking switched off: every call does nothing."""

    run_id: str | None = None
    last_step: int | None = None

    def log(self, metrics: dict[str, float], step: int) -> None:
        pass

    def summary(self, values: dict[str, Any]) -> None:
        pass

    def finish(self, failed: bool = False) -> None:
        pass


class WandbTracker:
    def __init__(self, run: Any, logged_before: int | None = None) -> None:
        self._run = run
        self._id: str | None = str(run.id) if getattr(run, "id", None) else None
        # Steps up to this one were logged by an earlier session of the run.
        self._before = -1 if logged_before is None else logged_before
        self._last_step = -1

    @property
    def run_id(self) -> str | None:
        return self._id

    @property
    def last_step(self) -> int | None:
        last = max(self._before, self._last_step)
        return None if last < 0 else last

    def log(self, metrics: dict[str, float], step: int) -> None:
        if step < self._last_step:
            # A bug in the caller, not the user's problem: fail loudly instead of letting
            # W&B drop the row silently.
            raise RuntimeError(f"W&B step went backwards ({step} after {self._last_step})")
        self._last_step = step
        if step <= self._before:
            return  # redone after a resume: the earlier session logged this step
        self._run.log(metrics, step=step)

    def summary(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            self._run.summary[key] = value

    def finish(self, failed: bool = False) -> None:
        self._run.finish(exit_code=1 if failed else 0)


def start_tracking(
    enabled: bool,
    *,
    name: str,
    group: str,
    config: dict[str, Any],
    directory: Path,
    run_id: str | None = None,
    logged_before: int | None = None,
) -> Tracker:
    """A W&B run in project $WANDB_PROJECT (default `imdb`); $WANDB_MODE=offline works offline.

    `run_id` continues that W&B run (a resumed training run); `logged_before` is the last
    step it logged, so that steps redone after the resume are not logged again."""
    if not enabled:
        return NoTracker()
    try:
        import wandb
    except ImportError as exc:
        raise ImdbError(f"--wandb needs the wandb package: {install_hint('wandb')}") from exc
    directory.mkdir(parents=True, exist_ok=True)
    try:
        run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", DEFAULT_PROJECT),
            name=name,
            group=group,
            config=config,
            dir=str(directory),
            reinit="finish_previous",
            id=run_id,
            resume="allow" if run_id else None,
        )
    except Exception as exc:  # wandb raises its own types for login/network problems
        raise ImdbError(
            f"--wandb: cannot start a W&B run ({first_line(exc)}); "
            "set WANDB_MODE=offline to log without network"
        ) from exc
    return WandbTracker(run, logged_before)
