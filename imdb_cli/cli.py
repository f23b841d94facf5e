"""The `imdb` command line: global options and the list of commands.

Each command lives in imdb_cli/commands/<name>.py as a thin wrapper that parses options,
calls one function of the core and renders the result.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from imdb_cli import __version__
from imdb_cli.commands import common
from imdb_cli.commands.help_format import Command, Group
from imdb_cli.commands.lines import command_line
from imdb_cli.config import set_command_renderer
from imdb_cli.console import set_verbosity
from imdb_cli.workspace import default_workdir

set_command_renderer(command_line)

# Command name -> module in imdb_cli/commands holding a function of the same name.
# Modules are imported only when their command runs: training and analysis pull in torch
# and transformers (seconds), which `imdb prepare` on a warm cache or `imdb models` need not.
COMMANDS = (
    "prepare",
    "train",
    "sweep",
    "evaluate",
    "compare",
    "report",
    "reproduce",
    "tsne",
    "attention",
    "predict",
    "export",
    "models",
)


class LazyCommands(Group):
    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in COMMANDS:
            return None
        module = importlib.import_module(f"imdb_cli.commands.{cmd_name}")
        single = typer.Typer(
            pretty_exceptions_enable=False, rich_markup_mode="rich", add_completion=False
        )
        single.command(cmd_name, cls=Command)(getattr(module, cmd_name))
        return _tidy_help(typer.main.get_command(single))

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        """Mistakes on the command line (an unknown option, a bad value, a missing argument)
        end like every other error: one red line and exit 2, not click's usage block and
        boxed panel."""

        def run() -> Any:
            return super(LazyCommands, self).main(
                args, prog_name, complete_var, False, windows_expand_args, **extra
            )

        if not standalone_mode:
            return run()
        try:
            with common.terminated_as_interrupted():
                code = run()
        except typer.Abort:
            raise SystemExit(common.fail("interrupted", 130).exit_code) from None
        except typer.TyperException as exc:  # click's errors, as typer exposes them
            if type(exc).__name__ == "NoArgsIsHelpError":  # the help is already printed
                sys.exit(2)
            # A usage error (a bad option, value or argument) carries the command's context.
            message = usage_message(exc) if hasattr(exc, "ctx") else str(exc)
            raise SystemExit(common.fail(message).exit_code) from None
        sys.exit(code if isinstance(code, int) else 0)


GLOBAL_OPTIONS = ("--workdir", "--verbose", "-v", "--quiet", "-q", "--version")


def usage_message(exc: Any) -> str:
    """click's message, and where to look: a global option given after the command is the
    usual slip."""
    message = exc.format_message()
    command = exc.ctx.command_path if exc.ctx is not None else "imdb"
    option = getattr(exc, "option_name", None)
    if option in GLOBAL_OPTIONS and command != "imdb":
        return (
            f"{message} ({option} is a global option: it goes before the command, "
            f"`imdb {option} ... {command.split()[-1]} ...`)"
        )
    return f"{message} (see `{command} --help`)"


def _unwrap(text: str) -> str:
    """Docstrings wrap at the source's width; help re-wraps to the terminal's, so single
    line breaks inside a paragraph would show as stray breaks (rich markup keeps them)."""
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


def _tidy_help(command: Any) -> Any:
    """Help without stray line breaks."""
    if command.help:
        command.help = _unwrap(command.help)
    for param in command.params:
        if getattr(param, "help", None):
            param.help = _unwrap(param.help)
    return command


app = typer.Typer(
    cls=LazyCommands,
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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
