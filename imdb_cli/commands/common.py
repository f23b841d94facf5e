"""What every command shares: the workspace from the global options and error handling."""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from imdb_cli.console import err, verbosity
from imdb_cli.errors import ImdbError
from imdb_cli.workspace import Workspace, default_workdir

F = TypeVar("F", bound=Callable[..., Any])

# Training options that `imdb train` and `imdb reproduce` both take (None: the model's YAML).
TruncationOption = Annotated[
    str | None,
    typer.Option(
        "--truncation",
        help="head, tail or head+tail: which tokens of a long review are kept (head+tail "
        "with --max-length 512 is the best published choice for IMDB). Default: the "
        "model's YAML (head).",
        show_default=False,
    ),
]
GroupByLengthOption = Annotated[
    bool | None,
    typer.Option(
        "--group-by-length/--no-group-by-length",
        help="Batch reviews of similar length together, so batches carry less padding "
        "(worth it at --max-length 256-512). Default: the model's YAML (off).",
        show_default=False,
    ),
]


class _State:
    workdir: Path = default_workdir()


state = _State()


def workspace() -> Workspace:
    return Workspace(state.workdir)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one red line on stderr; return the Exit to raise."""
    err.print(f"[bold red]error:[/bold red] [red]{message}[/red]", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def handles_errors(command: F) -> F:
    """Turn user errors into one red line and a non-zero exit; tracebacks only with --verbose."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ImdbError as exc:
            if verbosity.verbose:
                err.print(traceback.format_exc(), highlight=False)
            raise fail(exc.message, exc.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None

    return wrapper  # type: ignore[return-value]
