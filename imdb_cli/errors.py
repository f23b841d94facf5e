"""The one exception type a user can cause.

Everything the user can get wrong (a flag, a file, a YAML key) raises `ImdbError` with a
one-line message that names the input. The CLI prints it as one red line and exits
non-zero; only `--verbose` shows the traceback.
"""


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
