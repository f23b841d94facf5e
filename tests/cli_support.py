"""What every CLI error test asserts: one red line naming the input, no traceback."""

from __future__ import annotations

from typing import Any


def assert_one_red_line(result: Any, *fragments: str) -> None:
    """Non-zero exit, no traceback, exactly one `error:` line holding every fragment."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, result.output)
