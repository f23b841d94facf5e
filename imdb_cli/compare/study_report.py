"""`<workdir>/report.md`: what `imdb reproduce` did, found, and how to redo each step."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imdb_cli.compare.comparison import Comparison
from imdb_cli.compare.formats import (
    format_seconds,
    markdown_verdict,
    md_escape,
    render_markdown,
)
from imdb_cli.config import Invocation
from imdb_cli.data.entry import DEFAULT_DATASET, LEGACY_LABELS


@dataclass
class AnalysisStep:
    """One analysis of `imdb reproduce`: its files, or why it did not run."""

    name: str
    command: Invocation | None = None
    images: list[Path] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    summary: str | None = None
    skipped: str | None = None  # could not run here (say why); not a failure
    failed: str | None = None


@dataclass
class StudyReport:
    """Everything `<workdir>/report.md` says."""

    workdir: Path
    command: Invocation
    started_at: str
    versions: dict[str, str]
    models: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    devices: dict[str, str] = field(default_factory=dict)  # model -> device it trained on
    steps: list[Invocation] = field(default_factory=list)  # each step as its own command
    comparison: Comparison | None = None
    figures: dict[str, Path] = field(default_factory=dict)  # the comparison's PNGs by name
    analyses: list[AnalysisStep] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    page: Path | None = None  # report.html, the same study as one page to explore


def _link(path: Path, base: Path) -> str:
    """A relative link from report.md to `path` (markdown wants forward slashes)."""
    try:
        relative = Path(os.path.relpath(path.resolve(), base.resolve()))
    except ValueError:  # another drive on Windows
        relative = path
    return relative.as_posix().replace(" ", "%20")


def render_study_report(study: StudyReport) -> str:
    title = " vs ".join(study.models) if study.models else "no models"
    dataset = study.data.get("dataset", DEFAULT_DATASET)
    lines = [
        f"# {title} on {dataset}",
        "",
        f"Made by `imdb reproduce` on {study.started_at} in {format_seconds(study.seconds)}.",
    ]
    if study.page is not None:
        lines += [
            "",
            f"The same study as one page to explore, offline in any browser: "
            f"[{study.page.name}]({_link(study.page, study.workdir)}).",
        ]
    if study.failures:
        lines += ["", "**Incomplete.** " + " ".join(f"{f}." for f in study.failures)]
    if study.comparison is not None and study.comparison.verdict.pairs:
        # The answer first; the results below give the figures it rests on.
        lines += ["", *markdown_verdict(study.comparison, "##")]
    lines += ["", "## Command", "", "```bash", str(study.command), "```", ""]
    if study.data:
        d = study.data
        sizes = d.get("sizes", {})
        sized = " / ".join(f"{split} {int(n):,}" for split, n in sizes.items())
        sample = f", a seeded sample of {d['limit']:,} reviews" if d.get("limit") else ""
        dropped = f"{d.get('duplicates_dropped', 0):,} duplicate texts dropped" + (
            " from the full data before sampling" if d.get("limit") else ""
        )
        labels = ", ".join(str(n) for n in d.get("labels", LEGACY_LABELS))
        lines += [
            "## Data",
            "",
            f"- data set: {dataset} (classes: {labels})",
            f"- source: {d.get('source')}{sample}",
            f"- data fingerprint `{d.get('data_fingerprint')}`, split seed {d.get('split_seed')}",
            f"- reviews: {sized}; {dropped}",
            "",
        ]
    lines += ["## Results", ""]
    if study.comparison is None:
        lines += ["No run completed, so there is no table.", ""]
    else:
        figures = {name: _link(path, study.workdir) for name, path in study.figures.items()}
        lines += [
            render_markdown(study.comparison, heading_level=3, figures=figures, with_verdict=False)
        ]
    if study.analyses:
        lines += ["## Error analysis", ""]
        for step in study.analyses:
            lines += [f"### {step.name}", ""]
            if step.skipped:
                lines += [f"Skipped: {step.skipped}.", ""]
                continue
            if step.failed:
                lines += [f"**Failed:** {step.failed}", ""]
                continue
            if step.summary:
                lines += [step.summary + ".", ""]
            for image in step.images:
                lines += [f"![{image.stem}]({_link(image, study.workdir)})", ""]
            if step.files:
                links = ", ".join(f"[{p.name}]({_link(p, study.workdir)})" for p in step.files)
                lines += [f"Files: {links}", ""]
    lines += [
        "## Each step as its own command",
        "",
        "In a fresh --workdir: `imdb train` takes the newest data cache for the model's "
        "tokenizer and length, which here is the one `imdb prepare` makes.",
        "",
        "```bash",
        *map(str, study.steps),
        "```",
        "",
    ]
    lines += ["## Versions", "", "| | |", "| --- | --- |"]
    for name, version in study.versions.items():
        lines.append(f"| {name} | {md_escape(version)} |")
    for model, device in study.devices.items():
        lines.append(f"| device ({model}) | {md_escape(device)} |")
    return "\n".join(lines) + "\n"
