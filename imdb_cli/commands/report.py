"""`imdb report`: the comparison as one self-contained HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from imdb_cli.commands.common import RunsDatasetOption, handles_errors, runs_dataset, workspace
from imdb_cli.compare import formats
from imdb_cli.config import Invocation
from imdb_cli.console import info, warn
from imdb_cli.errors import ImdbError

HTML_SUFFIXES = (".html", ".htm")


def _folder(option: str, path: Path | None) -> Path | None:
    if path is not None and not path.is_dir():
        raise ImdbError(f"{option} {path}: no such folder")
    return path


@handles_errors
def report(
    targets: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="MODEL|RUN",
            help=(
                "What `imdb compare` takes: model keys (latest completed run, or a sweep's "
                "chosen rate, with mean ± std over seeds), `model/run-id`, or run folders. "
                "None: every model with a completed run."
            ),
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="The page to write (.html)."),
    ] = Path("report.html"),
    tsne: Annotated[
        Path | None,
        typer.Option(
            "--tsne",
            help="An `imdb tsne` folder to show. Default: <workdir>/analysis/tsne/latest, "
            "when it maps the compared runs.",
            show_default=False,
        ),
    ] = None,
    attention: Annotated[
        Path | None,
        typer.Option(
            "--attention",
            help="An `imdb attention` folder to show. Default: "
            "<workdir>/analysis/attention/latest, for the compared runs.",
            show_default=False,
        ),
    ] = None,
    dataset: RunsDatasetOption = None,
) -> None:
    """Write the comparison as one HTML page that opens offline in any browser: what was
    compared and how fairly, the verdict with its intervals, learning curves, the sweep,
    where the errors are, the reviews the models disagree on, t-SNE maps, attention maps
    and how to reproduce it all.

    Example: imdb report bert modernbert -o report.html
    """
    from imdb_cli.compare import html
    from imdb_cli.compare.comparison import compare

    html.require_libraries()
    if output.suffix.lower() not in HTML_SUFFIXES:
        raise ImdbError(f"--output {output}: give a file name ending in .html")
    formats.check_output_path(output)
    space = workspace()
    on = runs_dataset(dataset)
    comparison = compare(space, targets or [], dataset=on, lengths=True)
    for problem in comparison.not_comparable:
        warn(f"not comparable: {problem.message()}")
    page = html.for_workspace(
        space,
        comparison,
        made_by=Invocation(
            "report",
            tuple(targets or []),
            (("output", output), ("dataset", dataset)) if dataset else (("output", output),),
            space.root,
        ),
        tsne_dir=_folder("--tsne", tsne),
        attention_dir=_folder("--attention", attention),
    )
    for section, note in page.notes.items():
        info(f"{section}: {note}")
    size = html.write_html(output, page)
    info(
        f"wrote {output} ({size / 1e6:.1f} MB): open it in a browser; it needs no server or network"
    )
