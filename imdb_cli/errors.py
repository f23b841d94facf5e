"""The one exception type a user can cause, and what its messages share.

Everything the user can get wrong (a flag, a file, a YAML key) raises `ImdbError` with a
one-line message that names the input. The CLI prints it as one red line and exits
non-zero; only `--verbose` shows the traceback.

Messages quote values read from files the user or someone else wrote (a YAML value, a
library's error text): `shown` and `first_line` cut them, so a message stays one readable
line whatever the file holds (a YAML alias can expand to millions of values).
"""

import reprlib
import shlex
from importlib import metadata
from typing import Any

DISTRIBUTION = "imdb-cli"
SHOWN_CHARS = 60  # of a value quoted in a message
LINE_CHARS = 300  # of a library's error text quoted in a message
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring = 3, 40
_REPR.maxdict = _REPR.maxlist = _REPR.maxtuple = _REPR.maxset = 4


class ImdbError(Exception):
    """A problem with the user's input or environment, explained in one line."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Terminated(KeyboardInterrupt):
    """SIGTERM, taken as an interrupt (commands.common.terminated_as_interrupted): every
    `except KeyboardInterrupt` cleanup runs, and messages can say which it was."""


def cut(text: str, limit: int) -> str:
    """`text` on one line, at most `limit` characters (an ellipsis says it was cut)."""
    flat = " ".join(text.split()) if "\n" in text or "\r" in text else text
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def shown(value: Any, limit: int = SHOWN_CHARS) -> str:
    """A value as a message quotes it: its repr, cut to `limit` characters. reprlib builds
    only the first few items of each level, so a huge or deeply shared structure (a YAML
    alias bomb) is never expanded."""
    return cut(_REPR.repr(value), limit)


def first_line(exc: BaseException, limit: int = LINE_CHARS) -> str:
    """The first line of an exception's message (its type name when it has none), cut to
    `limit` characters: libraries put whole lists (every model type they know) in one line."""
    text = str(exc).strip()
    return cut(text.splitlines()[0], limit) if text else type(exc).__name__


def install_hint(extra: str) -> str:
    """The pip command that installs an optional part (an extra of pyproject.toml): its
    packages by name, as the installed imdb declares them, since imdb-cli itself is
    installed from a checkout, not from an index (`pip install 'imdb-cli[onnx]'` finds
    nothing there)."""
    try:
        required = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        required = []
    marker = f'extra == "{extra}"'
    packages = [r.split(";")[0].strip() for r in required if r.endswith(marker)]
    if not packages:  # run from a checkout that was never installed
        return f"pip install -e '.[{extra}]' (in the imdb checkout)"
    return shlex.join(["pip", "install", *packages])
