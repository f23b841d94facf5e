"""Where analysis results go: `<workdir>/analysis/<kind>/<timestamp>/`, plus `latest`.

`analysis/tsne/latest` always names the newest finished t-SNE folder, so that
`imdb attention --from-errors N` (and a person) can find its boundary_samples.csv without
knowing the timestamp. It is a relative symlink, swapped atomically; where the file
system cannot make one, the folder is copied instead.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from imdb_cli.errors import ImdbError
from imdb_cli.runs.run import Run
from imdb_cli.workspace import Workspace

LATEST = "latest"


def new_output_dir(workspace: Workspace, kind: str) -> Path:
    """A fresh, empty `analysis/<kind>/<timestamp>` folder (suffixed if the second repeats)."""
    parent = workspace.analysis / kind
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path, suffix = parent / stamp, 2
    while True:
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:  # an earlier run this second, or a concurrent one
            path, suffix = parent / f"{stamp}-{suffix}", suffix + 1
        except OSError as exc:
            raise ImdbError(f"cannot create {path}: {exc.strerror or exc}") from exc


def point_latest(out_dir: Path) -> Path:
    """Make `<out_dir's parent>/latest` name `out_dir`; call it once the folder is complete."""
    latest = out_dir.parent / LATEST
    tmp = out_dir.parent / f".{LATEST}.{os.getpid()}.tmp"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(out_dir.name, target_is_directory=True)
        if latest.is_dir() and not latest.is_symlink():
            shutil.rmtree(latest)  # a copy left by the fallback below
        os.replace(tmp, latest)
    except OSError:
        tmp.unlink(missing_ok=True)
        if latest.is_symlink() or latest.is_file():
            latest.unlink()
        elif latest.is_dir():
            shutil.rmtree(latest)
        shutil.copytree(out_dir, latest)
    return latest


def latest_dir(workspace: Workspace, kind: str) -> Path | None:
    latest = workspace.analysis / kind / LATEST
    return latest if latest.is_dir() else None


def safe_name(text: str, fallback: str = "review") -> str:
    """A file or folder name made of letters, digits, '.', '_' and '-' only."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or fallback


def run_labels(runs: Sequence[Run]) -> list[str]:
    """How each run is named in tables, titles and file names: its model key, or
    model-runid when two runs of one model are compared."""
    keys = [run.model for run in runs]
    labels = [
        key if keys.count(key) == 1 else f"{key}-{run.run_id}"
        for key, run in zip(keys, runs, strict=True)
    ]
    if len(set(labels)) != len(labels):
        raise ImdbError("the same run is named twice; give each run once")
    return labels
