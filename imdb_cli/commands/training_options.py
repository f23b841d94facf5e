"""The training options of a command, built from their one definition: TrainConfig's fields.

    @handles_errors
    @training_options()
    def train(model: ..., *, overrides: TrainOverrides, run_name: ... = None) -> None:
        config = spec.training.with_overrides(**overrides)

`training_options` puts one Typer option per TrainConfig field where the command has its
`overrides` parameter (the field's flag, type and help text from config.py), and hands the
command the options given as `overrides` (field name -> value; options not given are left
out, so the model's YAML decides them).
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable, Collection
from dataclasses import Field, fields
from typing import Annotated, Any, TypeVar

import typer

from imdb_cli.config import TrainConfig, flag_name

F = TypeVar("F", bound=Callable[..., Any])
TrainOverrides = dict[str, Any]  # field name -> value given on the command line
OVERRIDES = "overrides"
_TYPES = typing.get_type_hints(TrainConfig)


# Commands that take only the fields marked for them (config.setting), with their help.
MARKED = ("reproduce", "prepare")


def training_fields(command: str = "train", exclude: Collection[str] = ()) -> list[Field[Any]]:
    """The fields `command` takes as options: all, or those marked for it (MARKED)."""
    return [
        f
        for f in fields(TrainConfig)
        if f.name not in exclude and (command not in MARKED or f.metadata[command])
    ]


def training_options(command: str = "train", exclude: Collection[str] = ()) -> Callable[[F], F]:
    """Add the training options to a command in place of its `overrides` parameter.

    `command`: which options and help texts (train's: all of them; reproduce's and
    prepare's: those marked for it). `exclude`: field names the command sets itself (and
    so does not offer).
    """

    def decorate(function: F) -> F:
        signature = inspect.signature(function, eval_str=True)
        params = list(signature.parameters.values())
        names = [p.name for p in params]
        if OVERRIDES not in names:
            raise TypeError(f"{function.__name__} has no `{OVERRIDES}` parameter")
        at = names.index(OVERRIDES)
        kind = params[at].kind
        chosen = training_fields(command, exclude)
        options = [_parameter(f, kind, command) for f in chosen]
        option_names = [f.name for f in chosen]

        @functools.wraps(function)
        def with_overrides(*args: Any, **kwargs: Any) -> Any:
            given = {name: kwargs.pop(name) for name in option_names}
            kwargs[OVERRIDES] = {name: v for name, v in given.items() if v is not None}
            return function(*args, **kwargs)

        parameters = [*params[:at], *options, *params[at + 1 :]]
        with_overrides.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        with_overrides.__annotations__ = {p.name: p.annotation for p in parameters}
        return with_overrides  # type: ignore[return-value]

    return decorate


def _parameter(f: Field[Any], kind: inspect._ParameterKind, command: str) -> inspect.Parameter:
    value_type = _without_none(_TYPES[f.name])
    flag = flag_name(f.name)
    declaration = f"{flag}/--no-{flag.removeprefix('--')}" if value_type is bool else flag
    marked = f.metadata.get(command)
    help_text = marked if isinstance(marked, str) else f.metadata["help"]
    option = typer.Option(
        declaration, help=help_text, show_default=False, metavar=f.metadata["metavar"]
    )
    # Built at run time from the field's type (a value, so no `X | None` syntax for it).
    annotation = Annotated[typing.Optional[value_type], option]  # type: ignore[valid-type]  # noqa: UP045
    return inspect.Parameter(f.name, kind, default=None, annotation=annotation)


def _without_none(annotation: Any) -> Any:
    """`int | None` -> `int`; other types as they are."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        kept = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(kept) == 1:
            return kept[0]
    return annotation
