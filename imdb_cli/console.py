"""Terminal output shared by the core and the CLI: messages, warnings, progress bars.

The core reports through these functions so that `--quiet` silences everything but
errors and results in one place.
"""

from __future__ import annotations

import os
import time
from typing import IO, Any

from rich.console import Console, ConsoleDimensions
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

# The width of results written to a file or a pipe when $COLUMNS does not say: what an
# 80-column terminal shows, and every table is made to fit it.
LOG_WIDTH = 80


class _Results(Console):
    """stdout. A terminal keeps its own width; a file or a pipe gets $COLUMNS, else LOG_WIDTH,
    never the width of whatever terminal the command was started from (rich would take
    stdin's), so `imdb compare > results.txt` reads the same whoever wrote it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.given_width: int | None = kwargs.get("width")
        super().__init__(*args, **kwargs)

    @property
    def size(self) -> ConsoleDimensions:
        dimensions = super().size
        if self.given_width is not None or self.is_terminal:
            return dimensions
        columns = os.environ.get("COLUMNS", "")
        width = int(columns) if columns.isdigit() else LOG_WIDTH
        return ConsoleDimensions(width, dimensions.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]


out = _Results()


def file_console(stream: IO[str]) -> Console:
    """A console writing results into a file (`-o`): as wide as `out` in a pipe."""
    return _Results(file=stream, no_color=True)


err = Console(stderr=True)


class _Verbosity:
    quiet = False
    verbose = False


verbosity = _Verbosity()


def set_verbosity(*, quiet: bool, verbose: bool) -> None:
    verbosity.quiet = quiet
    verbosity.verbose = verbose


def info(message: str) -> None:
    """A progress message; hidden by --quiet."""
    if not verbosity.quiet:
        err.print(message, highlight=False, soft_wrap=True)


def debug(message: str) -> None:
    """Detail shown only with --verbose."""
    if verbosity.verbose:
        err.print(f"[dim]{message}[/dim]", highlight=False)


def warn(message: str) -> None:
    """Something the user should know even with --quiet."""
    err.print(f"[yellow]warning:[/yellow] {message}", highlight=False, soft_wrap=True)


# Seconds between plain progress lines when stderr is a file or a pipe.
PLAIN_EVERY = 30.0


class PlainProgress(Progress):
    """Progress for a log file or a pipe: a plain line every PLAIN_EVERY seconds and one
    when a task ends, where rich would print its bar once, at the end."""

    def __init__(self, *args: Any, unit: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unit = unit
        self._printed: dict[TaskID, float] = {}

    def add_task(self, *args: Any, **kwargs: Any) -> TaskID:
        task_id = super().add_task(*args, **kwargs)
        self._printed[task_id] = time.monotonic()
        return task_id

    def update(self, task_id: TaskID, **kwargs: Any) -> None:
        super().update(task_id, **kwargs)
        self._report(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._report(task_id)

    def stop(self) -> None:
        for task_id in list(self._printed):
            self._line(self._tasks[task_id])
        super().stop()

    def _report(self, task_id: TaskID) -> None:
        task = self._tasks[task_id]
        finished = task.total is not None and task.completed >= task.total
        # A finished task's line waits for stop(): its last figures may still arrive.
        if not finished and time.monotonic() - self._printed[task_id] >= PLAIN_EVERY:
            self._line(task)

    def _line(self, task: Task) -> None:
        self._printed[task.id] = time.monotonic()
        done, total = task.completed, task.total
        elapsed = task.elapsed or 0.0
        parts = [f"{task.description}: {done:,.0f}"]
        if total:
            parts[0] += f"/{total:,.0f} {self.unit} ({100 * done / total:.0f}%)"
        speed = done / elapsed if elapsed > 0 else 0.0
        if speed:
            parts.append(f"{speed:,.1f} {self.unit}/s")
        parts.append(f"elapsed {_clock(elapsed)}")
        if total and speed and done < total:
            parts.append(f"remaining {_clock((total - done) / speed)}")
        stats = task.fields.get("stats")
        if stats:
            parts.append(str(stats))
        self.console.print(" | ".join(parts), highlight=False, markup=False, soft_wrap=True)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def progress(*extra_columns: TextColumn, unit: str = "reviews") -> Progress:
    """Progress on stderr, silenced by --quiet: a rich bar on a terminal, plain lines
    (every PLAIN_EVERY seconds and at the end) in a file or a pipe; `unit` is what the
    task counts."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *extra_columns,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    if err.is_terminal or verbosity.quiet:
        return Progress(*columns, console=err, disable=verbosity.quiet, transient=False)
    return PlainProgress(*columns, console=err, disable=True, unit=unit)


def stats_column() -> TextColumn:
    """A progress column for running figures (loss, accuracy, speed): `stats=` of a task."""
    return TextColumn("{task.fields[stats]}")
