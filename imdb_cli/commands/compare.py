"""`imdb compare`: the results table, with confidence intervals and paired tests."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from imdb_cli import report
from imdb_cli.commands.common import handles_errors, workspace
from imdb_cli.console import info, out, warn

# Rendered at this width when stdout is not a terminal (logs, CI, pipes), so that no
# number is folded or cut.
LOG_WIDTH = 160


@handles_errors
def compare(
    targets: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="MODEL|RUN",
            help=(
                "Model keys (latest completed run, plus mean ± std over its completed runs "
                "with the same settings and test reviews), `model/run-id`, or run folders. "
                "None: every model with a completed run."
            ),
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[
        str,
        typer.Option("--format", "-f", help="table, markdown, csv or json."),
    ] = "table",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file instead of the terminal."),
    ] = None,
) -> None:
    """Compare runs: test accuracy with 95% Wilson intervals and paired McNemar tests.

    Example: imdb compare bert modernbert --format markdown -o results.md
    """
    report.check_format(fmt)
    if output is not None:
        report.check_output_path(output)
    comparison = report.compare(workspace(), targets or [])
    for problem in comparison.not_comparable:
        warn(f"not comparable: {problem.message()}")
    if output is not None:
        report.write_text(output, report.render(comparison, fmt))
        info(f"wrote {output}")
        return
    if fmt == "table":
        console = out if out.is_terminal else Console(width=LOG_WIDTH, highlight=False)
        console.print(report.rich_table(comparison))
        for line in report.result_lines(comparison):
            if not line.startswith("not comparable:"):  # already warned on stderr
                console.print(line, highlight=False, markup=False)
        return
    text = report.render(comparison, fmt)
    typer.echo(text, nl=False)
    if fmt == "csv":
        # csv holds the model rows only; the verdicts go where a person reads them.
        for line in report.result_lines(comparison):
            if not line.startswith("not comparable:"):
                info(line)
