"""Where everything lives on disk.

<workdir>/cache/<data-fingerprint>/split-seed42/                  review texts per split
<workdir>/cache/<data-fingerprint>/<tokenizer-key>-len128-seed42/  token ids per split
<workdir>/runs/<model>/<run-id>/{config.yaml,ledger.json,train.log,checkpoints/}
<workdir>/analysis/...                                            plots and tables
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_WORKDIR = "imdb-workspace"


def default_workdir() -> Path:
    return Path(os.environ.get("IMDB_WORKDIR", DEFAULT_WORKDIR))


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def analysis(self) -> Path:
        return self.root / "analysis"

    def model_runs(self, model_key: str) -> Path:
        return self.runs / model_key

    def as_option(self) -> Path | None:
        """The workspace as a suggested command's --workdir: None when a command run here
        finds it by itself (it is the current folder's, or $IMDB_WORKDIR)."""
        return None if self.root.resolve() == default_workdir().resolve() else self.root
