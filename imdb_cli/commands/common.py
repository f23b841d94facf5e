"""What every command shares: the workspace from the global options, error handling, and
the data set options."""

from __future__ import annotations

import contextlib
import functools
import signal
import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from imdb_cli.console import err, info, verbosity
from imdb_cli.data.entry import DEFAULT_DATASET, DatasetEntry, load_dataset_entry
from imdb_cli.data.store import recorded_datasets
from imdb_cli.errors import ImdbError, Terminated, cut
from imdb_cli.files import os_error_message
from imdb_cli.runs.run import Run
from imdb_cli.runs.select import select_run
from imdb_cli.workspace import Workspace, default_workdir

F = TypeVar("F", bound=Callable[..., Any])
# The last guard of "never print a value whole": messages quote values through
# errors.shown; whatever slipped through is cut here.
MESSAGE_CHARS = 1500

_DATASET_HELP = (
    "Data set: a name in dataset_configs/ (imdb, ...) or the path of a dataset YAML "
    "(source, text and label columns, label names, split). Default: imdb."
)
# The data set to read (prepare, train, reproduce).
DatasetOption = Annotated[
    str | None,
    typer.Option("--dataset", help=_DATASET_HELP, show_default=False),
]
# The data set whose runs a model key means (evaluate, compare, tsne, attention, predict).
RunsDatasetOption = Annotated[
    str | None,
    typer.Option(
        "--dataset",
        help=_DATASET_HELP + " A model key means its run on this data set.",
        show_default=False,
    ),
]
DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="A local copy of the data set's source: for IMDB the Hub's parquet layout "
        "(plain_text/*.parquet) or aclImdb/{train,test}/{pos,neg}/*.txt. Default: the "
        "variable the data set's YAML names ($IMDB_DATA_DIR for IMDB), else its source.",
        show_default=False,
    ),
]


def chosen_run(space: Workspace, name: str, dataset: str | None) -> Run:
    """The run `name` means (runs.select: the same for every command), said on stderr with
    why: "lr 3e-05 selected by sweep ..." or "its latest completed run"."""
    selected = select_run(space, name, dataset)
    info(f"{name}: {selected.describe()}")
    return selected.run


def dataset_entry(option: str | None) -> DatasetEntry:
    """The data set `--dataset` names: a name in dataset_configs/, a YAML path, or the name
    of a data set prepared in this workspace from a YAML given by path (found again by the
    path its cache recorded); IMDB when none."""
    try:
        return load_dataset_entry(option)
    except ImdbError:
        recorded = recorded_datasets(workspace().cache).get(option or "")
        if recorded is None:
            raise
        return load_dataset_entry(str(recorded))


def runs_dataset(option: str | None) -> str:
    """The name of the data set whose runs a model key means (`--dataset`: as for
    dataset_entry, or the name of a data set the workspace prepared, even when its YAML is
    gone); IMDB when none."""
    if option is None:
        return DEFAULT_DATASET
    try:
        return dataset_entry(option).name
    except ImdbError:
        if option in recorded_datasets(workspace().cache):
            return option
        raise


class _State:
    workdir: Path = default_workdir()


state = _State()


def workspace() -> Workspace:
    """The workspace --workdir (or $IMDB_WORKDIR) names: a folder, or a name not yet taken."""
    root = state.workdir
    if root.exists() and not root.is_dir():
        raise ImdbError(
            f"--workdir {root}: is a file, not a folder (the workspace is a folder; "
            "--workdir or IMDB_WORKDIR names it)"
        )
    return Workspace(root)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one red line on stderr; return the Exit to raise.

    The message is escaped: square brackets in it (`pip install 'onnx>=1.17'`, a file
    name) are text, not rich markup."""
    err.print(
        f"[bold red]error:[/bold red] [red]{escape(cut(message, MESSAGE_CHARS))}[/red]",
        highlight=False,
        soft_wrap=True,
    )
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
        except OSError as exc:  # the environment (disk, permissions), never a user's typo
            if verbosity.verbose:
                err.print(traceback.format_exc(), highlight=False)
            raise fail(os_error_message(exc)) from None
        except KeyboardInterrupt as exc:
            if isinstance(exc, Terminated):
                raise fail("terminated (SIGTERM)", 143) from None
            raise fail("interrupted", 130) from None

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def terminated_as_interrupted() -> Iterator[None]:
    """SIGTERM (`kill`, a scheduler's stop) ends a command as Ctrl-C does: temp files are
    removed, a run's ledger records the interruption, one line says so. Only the main
    thread can take a signal handler."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: object) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def compact_table(title: str) -> Table:
    """A table drawn to fit 80 columns: no side borders, one space between columns."""
    return Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=(0, 1, 0, 0),
    )
