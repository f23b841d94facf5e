"""Fixtures shared by the test modules (helpers without fixtures live in *_support.py).

Everything here is offline. Real IMDB (../shared/data/imdb or $IMDB_DATA_DIR) is used only
through `real_imdb_dir`, which skips when the copy is absent.

- `workdir`, `run_cli`: an empty workspace and the CLI run in-process against it;
- `synthetic_imdb_dir`, `real_imdb_dir`: IMDB folders;
- `prepared_root`, `prepared`: a tiny-bert cache prepared once per session, and a copy of it;
- `trained_root`, `trained_workspace`: tiny-bert and tiny-modernbert trained once per
  session, and a private copy of that workspace (the t-SNE and attention tests);
- `head_tail_root`: tiny-bert trained once per session on reviews cut head+tail at 48
  tokens (the predict and export tests);
- `hf_export_root`: tiny-bert of `trained_root` exported once per session as a Hugging Face
  folder (`imdb export`), which the fault tests copy and damage;
- `single_thread`: torch on one thread for a test (used by the training modules).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from analysis_support import copy_trained, trained_workspace_root
from data_support import REAL_IMDB, synthetic_reviews, write_parquet_imdb
from predict_support import head_tail_workspace
from training_support import copy_workspace, one_thread, prepared_workspace_root
from typer.testing import CliRunner, Result

from imdb_cli.workspace import Workspace


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`-m cuda` on a machine without a GPU: skip those tests, saying why, instead of failing."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none here)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty workspace folder, also set as IMDB_WORKDIR; IMDB_DATA_DIR unset."""
    path = tmp_path / "workspace"
    monkeypatch.setenv("IMDB_WORKDIR", str(path))
    monkeypatch.delenv("IMDB_DATA_DIR", raising=False)
    return path


@pytest.fixture
def synthetic_imdb_dir(tmp_path: Path) -> Path:
    """200 distinct synthetic reviews (100 train, 100 test) in the Hub's parquet layout."""
    reviews = synthetic_reviews(200)
    return write_parquet_imdb(tmp_path / "imdb", reviews[:100], reviews[100:])


@pytest.fixture(scope="session")
def real_imdb_dir() -> Path:
    if not (REAL_IMDB / "plain_text").is_dir():
        pytest.skip(f"real IMDB not found at {REAL_IMDB}")
    return REAL_IMDB


@pytest.fixture
def run_cli(workdir: Path) -> Callable[..., Result]:
    """Run `imdb --workdir <workdir> ARGS...` in-process; returns click's Result."""
    from imdb_cli.cli import app

    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(app, ["--workdir", str(workdir), *args], catch_exceptions=False)

    return run


@pytest.fixture(scope="session")
def prepared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepared_workspace_root(tmp_path_factory.mktemp("prepared"))


@pytest.fixture
def prepared(prepared_root: Path, workdir: Path) -> Workspace:
    """The CLI's workspace (`workdir`) with the tiny-bert cache in it."""
    return copy_workspace(prepared_root, workdir)


@pytest.fixture(scope="session")
def trained_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_workspace_root(tmp_path_factory.mktemp("analysis"))


@pytest.fixture
def trained_workspace(trained_root: Path, tmp_path: Path) -> Workspace:
    return copy_trained(trained_root, tmp_path / "ws")


@pytest.fixture(scope="session")
def head_tail_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    previous = one_thread()
    try:
        return head_tail_workspace(tmp_path_factory.mktemp("head-tail")).root
    finally:
        torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def hf_export_root(trained_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from imdb_cli.handoff.export import export

    previous = one_thread()
    try:
        out = tmp_path_factory.mktemp("hf-export") / "tiny-bert-hf"
        export(Workspace(trained_root), "tiny-bert", out)
        return out
    finally:
        torch.set_num_threads(previous)


@pytest.fixture
def single_thread() -> Iterator[None]:
    previous = one_thread()
    yield
    torch.set_num_threads(previous)
