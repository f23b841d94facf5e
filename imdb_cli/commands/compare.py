"""`imdb compare`: the results table, what is compared, where the errors are, figures."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from imdb_cli.commands.common import RunsDatasetOption, handles_errors, runs_dataset, workspace
from imdb_cli.compare import comparison as comparing
from imdb_cli.compare import formats
from imdb_cli.console import info, out, warn
from imdb_cli.errors import ImdbError


@handles_errors
def compare(
    targets: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="MODEL|RUN",
            help=(
                "Model keys (the run its latest sweep selected, else its latest completed run, "
                "with its seeds: its completed runs with the same settings and test reviews), "
                "`model/run-id`, or run folders (several of one model that differ only by seed "
                "are its seeds). "
                "None: every model with a completed run. Runs on different data sets are "
                "never paired."
            ),
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="table, markdown, csv or json. markdown and json hold everything: recipes, "
            "curves, confusion matrices, per-class figures, calibration, accuracy by length.",
        ),
    ] = "table",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file instead of the terminal."),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            help="Also write the figures to this folder: learning curves, confusion matrices, "
            "reliability diagram, accuracy by review length.",
            show_default=False,
        ),
    ] = None,
    dataset: RunsDatasetOption = None,
) -> None:
    """Compare runs: the verdict first (across seeds when each model has two or more:
    the difference in mean test accuracy, its 95% interval and test, Holm-adjusted over
    pairs, and what it could have detected; with one seed, a comparison of two
    checkpoints and the seeds that would compare the encoders), then what differs
    between the runs, test accuracy over seeds with 95% intervals, and where the errors
    are (per class, calibration, review length).

    Example: imdb compare bert modernbert --format markdown -o results.md --plot figs/
    """
    formats.check_format(fmt)
    if output is not None:
        formats.check_output_path(output)
    if plot is not None and plot.exists() and not plot.is_dir():
        raise ImdbError(f"--plot {plot}: is a file; give a folder")
    # Accuracy by length counts the test reviews' tokens (once per data set, then cached).
    lengths = fmt in ("markdown", "json") or plot is not None
    comparison = comparing.compare(
        workspace(), targets or [], dataset=runs_dataset(dataset), lengths=lengths
    )
    for problem in comparison.not_comparable:
        warn(f"not comparable: {problem.message()}")
    if plot is not None:
        from imdb_cli.compare.figures import write_figures

        for path in write_figures(comparison, plot).values():
            info(f"wrote {path}")
    if output is not None:
        formats.write_text(output, formats.render(comparison, fmt))
        info(f"wrote {output}")
        return
    if fmt == "table":
        # Not-comparable runs were already warned about on stderr.
        formats.print_comparison(out, comparison, skip_not_comparable=True)
        return
    text = formats.render(comparison, fmt)
    typer.echo(text, nl=False)
    if fmt == "csv":
        # csv holds the model rows only; the verdicts go where a person reads them.
        for line in formats.verdict_lines(comparison):
            info(line)
        for line in formats.warning_lines(comparison):
            warn(line)
        for line in formats.result_lines(comparison):
            if not line.startswith("not comparable:"):
                info(line)
