"""The one exception type a user can cause, and what its messages share.

Everything the user can get wrong (a flag, a file, a YAML key) raises `ImdbError` with a
one-line message that names the input. The CLI prints it as one red line and exits
non-zero; only `--verbose` shows the traceback.
"""

import shlex
from importlib import metadata

DISTRIBUTION = "imdb-cli"


class ImdbError(Exception):
    """A problem with the user's input or environment, explained in one line."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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
