"""Two trained runs (tiny-bert, tiny-modernbert) for the t-SNE and attention tests.

Both models are trained once per test session with the real `train` (1 epoch on a small
slice of the synthetic reviews of training_support); each test copies the result into its
own workspace (the `trained_root` / `trained_workspace` fixtures of conftest.py), so tests
never see each other's analysis folders.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from training_support import copy_workspace, prepared_workspace_root, tiny_config
from typer.testing import CliRunner, Result

from imdb_cli import registry
from imdb_cli.cli import app
from imdb_cli.config import TrainConfig
from imdb_cli.training.loop import train
from imdb_cli.workspace import Workspace

MODELS = ("tiny-bert", "tiny-modernbert")
LIMIT_TRAIN = 240  # enough for the two models to learn something and disagree
_trained: dict[str, Path] = {}


def trained_workspace_root(base: Path) -> Path:
    """A workspace with the prepared cache and one completed run of each of MODELS."""
    if "root" not in _trained:
        # Both tiny models use the bert-base-uncased vocabulary: one cache serves both.
        workspace = copy_workspace(prepared_workspace_root(base), base / "trained")
        for key in MODELS:
            train(workspace, registry.load_spec(key), train_config())
        _trained["root"] = workspace.root
    return _trained["root"]


def train_config() -> TrainConfig:
    return tiny_config(epochs=1, limit_train=LIMIT_TRAIN, eval_batch_size=32)


def copy_trained(root: Path, target: Path) -> Workspace:
    """A private copy; the ledgers' cache paths still name the template, and
    runs.caches.cache_of_run finds the copy under the new workspace by fingerprint."""
    shutil.copytree(root, target)
    return Workspace(target)


def imdb(workspace: Workspace, *args: str) -> Result:
    return CliRunner().invoke(app, ["--workdir", str(workspace.root), *args])
