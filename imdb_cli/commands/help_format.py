"""How `--help` reads, for every command: no `<bool>` placeholder after a flag (it takes no
value), and an option's `[default: ...]` right after its help text rather than on a line of
its own whenever the help text wraps."""

from __future__ import annotations

import functools
import inspect
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
    def help_text(*args: Any, **kwargs: Any) -> Any:
        columns = parameter_help(*args, **kwargs)
        parts = getattr(columns, "renderables", None)
        if parts and all(isinstance(part, Text) for part in parts):
            return Columns([Text(" ").join(parts)])
        return columns

    help_text.imdb_joined = True  # type: ignore[attr-defined]
    return help_text


def _join_help_and_default() -> None:
    """Wrap typer's private `_get_parameter_help` (typer has no public hook for this layout).
    A typer without it, or with a different signature, keeps its own layout: help still
    works, only the default may sit on a line of its own."""
    original = getattr(typer.rich_utils, "_get_parameter_help", None)
    if not callable(original) or getattr(original, "imdb_joined", False):
        return  # not in this typer, or already wrapped (the module was reloaded)
    try:
        names = set(inspect.signature(original).parameters)
    except (TypeError, ValueError):
        return
    if not {"param", "ctx"} <= names:
        return
    typer.rich_utils._get_parameter_help = _joined(original)  # type: ignore[attr-defined]


_join_help_and_default()
