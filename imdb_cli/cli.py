"""The `imdb` command line: global options and the list of commands.

Each command lives in imdb_cli/commands/<name>.py as a thin wrapper that parses options,
calls one function of the core and renders the result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from imdb_cli import __version__
from imdb_cli.commands import common
from imdb_cli.console import set_verbosity
from imdb_cli.workspace import default_workdir

app = typer.Typer(
    name="imdb",
    help=(
        "Fine-tune, compare and explain text encoders on IMDB sentiment.\n\n"
        "Typical flow: imdb prepare -> imdb train MODEL -> imdb compare A B -> "
        "imdb tsne A B -> imdb attention --review TEXT"
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"imdb {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    workdir: Annotated[
        Path,
        typer.Option(
            "--workdir",
            envvar="IMDB_WORKDIR",
            help="Workspace folder for the cache, runs and analysis.",
            show_default=True,
        ),
    ] = default_workdir(),
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="More detail, and tracebacks on errors.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only errors and results; no progress bars.")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    set_verbosity(quiet=quiet, verbose=verbose)
    common.state.workdir = workdir


def _register() -> None:
    # Imported here so that `imdb --help` stays the only place listing every command.
    from imdb_cli.commands import (
        attention,
        compare,
        evaluate,
        models,
        prepare,
        reproduce,
        train,
        tsne,
    )

    app.command("prepare")(prepare.prepare)
    app.command("train")(train.train)
    app.command("evaluate")(evaluate.evaluate)
    app.command("compare")(compare.compare)
    app.command("reproduce")(reproduce.reproduce)
    app.command("tsne")(tsne.tsne)
    app.command("attention")(attention.attention)
    app.command("models")(models.models)


_register()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
