"""How `--help` reads, for every command: no `<bool>` placeholder after a flag (it takes no
value), and an option's `[default: ...]` right after its help text rather than on a line of
its own whenever the help text wraps."""

from __future__ import annotations

import functools
from typing import Any

import typer.rich_utils
from rich.columns import Columns
from rich.text import Text
from typer.core import TyperCommand, TyperGroup


def _without_flag_placeholders(params: list[Any]) -> list[Any]:
    for param in params:
        if getattr(param, "is_flag", False):
            param.metavar = ""  # Typer shows a metavar as the option's type, instead of <bool>
    return params


class Command(TyperCommand):
    def get_params(self, ctx: Any) -> list[Any]:
        return _without_flag_placeholders(super().get_params(ctx))


class Group(TyperGroup):
    def get_params(self, ctx: Any) -> list[Any]:
        return _without_flag_placeholders(super().get_params(ctx))


def _joined(parameter_help: Any) -> Any:
    """Typer lays an option's help and its default out as columns, so a help text that wraps
    pushes the default onto a line of its own; one text wraps them as one paragraph (still
    in a Columns, which the options table sizes as before)."""

    @functools.wraps(parameter_help)
    def help_text(**kwargs: Any) -> Any:
        columns = parameter_help(**kwargs)
        parts = getattr(columns, "renderables", None)
        if parts and all(isinstance(part, Text) for part in parts):
            return Columns([Text(" ").join(parts)])
        return columns

    return help_text


typer.rich_utils._get_parameter_help = _joined(typer.rich_utils._get_parameter_help)  # type: ignore[attr-defined]
