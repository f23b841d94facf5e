"""Command lines: an Invocation (config.py) as the text a user types.

The one place a command line is written. Each option is spelt the way the command that
takes it declares it (its flag, its `--no-` form, how many values), looked up in the
command itself, so a suggested or recorded command parses back to what the core meant;
an option the command does not take is a bug, raised here rather than shown to a user.
"""

from __future__ import annotations

import functools
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer

from imdb_cli.config import Invocation


@functools.cache
def _command(name: str) -> Any:
    """The click command of `imdb NAME` (built by typer from its module, as the CLI does)."""
    from imdb_cli.cli import app  # the CLI imports this module: not at import time

    group = typer.main.get_command(app)
    command = group.get_command(None, name)  # type: ignore[attr-defined]
    if command is None:
        raise ValueError(f"imdb has no command {name!r}")
    return command


@functools.cache
def _global_options() -> dict[str, Any]:
    from imdb_cli.cli import app

    return {p.name: p for p in typer.main.get_command(app).params}


def option_words(param: Any, value: Any) -> list[str]:
    """One option's words: `--epochs 3`, `--no-tf32`, `--adam-betas 0.9 0.98`, `--text A
    --text B` (floats as repr, so they parse back to the same number)."""
    flag = param.opts[0]
    if getattr(param, "is_flag", False) and getattr(param, "is_bool_flag", True):
        if value:
            return [flag]
        secondary = getattr(param, "secondary_opts", [])
        return [secondary[0]] if secondary else []
    if isinstance(value, Sequence) and not isinstance(value, str):
        values = [_word(v) for v in value]
        if getattr(param, "multiple", False):
            return [word for v in values for word in (flag, v)]
        if param.nargs == len(values):
            return [flag, *values]
        raise ValueError(f"{flag} takes {param.nargs} value(s), not {len(values)}")
    return [flag, _word(value)]


def _word(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def command_line(invocation: Invocation) -> str:
    """`imdb [--workdir DIR] COMMAND ARGUMENTS OPTIONS`, quoted for a POSIX shell."""
    words = ["imdb"]
    if invocation.workdir is not None:
        words += option_words(_global_options()["workdir"], Path(invocation.workdir))
    words.append(invocation.command)
    words += invocation.arguments
    params = {p.name: p for p in _command(invocation.command).params}
    for name, value in invocation.options:
        if name not in params:
            raise ValueError(f"`imdb {invocation.command}` takes no option {name!r}")
        words += option_words(params[name], value)
    line = shlex.join(words)
    prefix = " ".join(f"{name}={shlex.quote(value)}" for name, value in invocation.environment)
    return f"{prefix} {line}" if prefix else line
