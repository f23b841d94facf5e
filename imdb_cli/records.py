"""Typed records to and from JSON: the one codec for what imdb writes and reads back.

A ledger, a model YAML's `training:` section and an export's config are dataclasses in
the code; on disk they are JSON (or YAML) values. `decode` turns such a value into its
dataclass and checks it on the way, with pydantic in strict mode: a value of the wrong
type is refused, never coerced ("5" is not a number, `true` is not 1), an unknown key is
refused (a misspelt field would otherwise be dropped in silence), and the error names the
field's path in one line. `encode` is the way back. Checks of meaning (a learning rate
must be positive) stay with each record; this module checks shape and type only.

A dataclass opts in to the refusal of unknown keys with `__pydantic_config__ = STRICT`.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from pydantic import ConfigDict, TypeAdapter, ValidationError

from imdb_cli import errors
from imdb_cli.errors import ImdbError

T = TypeVar("T")

# Unknown keys are an error in every record imdb reads back.
STRICT = ConfigDict(extra="forbid")
# How much of a bad value a message shows: a value can be a whole review, or a crafted
# file's megabytes.
SHOWN_CHARACTERS = 40
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def _adapter(kind: Any) -> TypeAdapter[Any]:
    """pydantic builds a validator per type once (milliseconds each)."""
    if kind not in _ADAPTERS:
        _ADAPTERS[kind] = TypeAdapter(kind)
    return _ADAPTERS[kind]


def decode(kind: type[T], value: Any, where: str, prefix: str = "", noun: str = "field") -> T:
    """`value` (parsed JSON or YAML) as a `kind`, every field's type checked.

    `where` names the file in errors, `prefix` the key the value sits under in it (a
    model YAML's `training`), `noun` what the file calls its names (a YAML's keys)."""
    try:
        # Through JSON text, because strict JSON validation takes a list for a tuple (a
        # YAML or JSON file has no tuples), which strict Python validation refuses.
        text = json.dumps(value)
    except (TypeError, ValueError) as exc:  # YAML can hold dates, sets, non-string keys
        at = f"{noun} '{prefix}'" if prefix else "it"
        raise ImdbError(f"{where}: {at} holds a value that is not plain data ({exc})") from exc
    try:
        decoded: T = _adapter(kind).validate_json(text, strict=True)
    except ValidationError as exc:
        raise ImdbError(f"{where}: {describe(exc, prefix, noun)}") from None
    return decoded


def encode(record: Any) -> Any:
    """A record as JSON values (tuples become lists), ready for json.dumps."""
    return _adapter(type(record)).dump_python(record, mode="json")


def shown(value: Any) -> str:
    """A value as a message shows it: its repr, cut to SHOWN_CHARACTERS (errors.shown: a
    huge value's repr is never built whole)."""
    return errors.shown(value, SHOWN_CHARACTERS)


def describe(exc: ValidationError, prefix: str = "", noun: str = "field") -> str:
    """The first problem pydantic found, as one clause naming the field."""
    error = exc.errors(include_url=False)[0]
    # A union's alternatives appear in the path by their type names; only fields and
    # list positions say where the value is.
    parts = [prefix] if prefix else []
    for part in error["loc"]:
        if isinstance(part, int):
            parts[-1:] = [f"{parts[-1] if parts else ''}[{part}]"]
        elif _FIELD.match(str(part)):
            parts.append(str(part))
    path = ".".join(parts) or "the document"
    kind = error["type"]
    if kind == "missing":
        return f"{noun} '{path}' is missing"
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        return f"unknown {noun} '{path}'"
    message = error["msg"][0].lower() + error["msg"][1:]
    return f"{noun} '{path}': {message} (got {shown(error.get('input'))})"
