"""How `--help` reads, for every command: no `<bool>` placeholder after a flag (it takes no
value), a flag's `--no-...` form under it rather than in a column of its own, and an
option's `[default: ...]` right after its help text rather than on a line of its own
whenever the help text wraps."""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Iterator
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


@contextlib.contextmanager
def _negations_under_their_flags(params: list[Any]) -> Iterator[None]:
    """While help is drawn, `--no-tf32` shows on the line below `--tf32` instead of in a
    column of its own: at 80 columns that column (as wide as `--no-group-by-length`) left
    the help text some 20 characters. Without it typer would show such a flag's default as
    True or False, so these flags say their default in their help text. Parsing never sees
    the change (help exits)."""
    saved = [
        (p, p.opts, p.secondary_opts, p.show_default)
        for p in params
        if getattr(p, "secondary_opts", None)
    ]
    try:
        for param, opts, secondary, _ in saved:
            param.opts = ["\n".join([*opts, *secondary])]
            param.secondary_opts = []
            param.show_default = False
        yield
    finally:
        for param, opts, secondary, show_default in saved:
            param.opts, param.secondary_opts, param.show_default = opts, secondary, show_default


class Command(TyperCommand):
    def get_params(self, ctx: Any) -> list[Any]:
        return _without_flag_placeholders(super().get_params(ctx))

    def format_help(self, ctx: Any, formatter: Any) -> None:
        with _negations_under_their_flags(self.get_params(ctx)):
            super().format_help(ctx, formatter)


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
