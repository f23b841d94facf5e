"""Terminal output shared by the core and the CLI: messages, warnings, progress bars.

The core reports through these functions so that `--quiet` silences everything but
errors and results in one place.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

out = Console()
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
    err.print(f"[yellow]warning:[/yellow] {message}", highlight=False)


def progress(*extra_columns: TextColumn) -> Progress:
    """A rich progress bar on stderr, disabled by --quiet."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *extra_columns,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=verbosity.quiet,
        transient=False,
    )


def stats_column() -> TextColumn:
    """A progress column for running figures (loss, accuracy, speed): `stats=` of a task."""
    return TextColumn("{task.fields[stats]}")
