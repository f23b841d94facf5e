"""What every CLI error test asserts: one red line naming the input, no traceback."""

from __future__ import annotations

import shlex
import subprocess
import sys
from typing import Any


def assert_one_red_line(result: Any, *fragments: str) -> None:
    """Non-zero exit, no traceback, exactly one `error:` line holding every fragment."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, result.output)


def follow_pip_hint(message: str) -> list[str]:
    """The `pip install ...` that ends an error message, followed as written: a dry run (the
    packages are here already), which fails on a name or version no index has. Returns the
    command's words."""
    command = shlex.split(message.rsplit(": ", 1)[-1].strip())
    assert command[:2] == ["pip", "install"], message
    followed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", *command[2:]],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert followed.returncode == 0, followed.stderr
    return command
