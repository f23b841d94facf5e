"""Data-parallel training under torchrun (gloo on the CPU).

Two processes with a global batch of 8 (4 reviews each) must train the same model as one
process with a batch of 8: DDP averages the two ranks' gradients, which is the mean over
the global batch. Dropout is switched off (a copy of tiny-bert's YAML) because each process
draws its own dropout masks; everything else is deterministic on the CPU.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from cli_support import assert_one_red_line
from click.testing import Result
from training_support import TINY, copy_workspace, prepared_workspace_root, tiny_config

from imdb_cli import registry
from imdb_cli.errors import ImdbError
from imdb_cli.runs.ledger import Ledger, read_ledger
from imdb_cli.training.distributed import Distributed, check_world

NODROP = "tiny-bert-nodrop"
TRAIN = ["--limit-train", "64", "--epochs", "1", "--batch-size", "8", "--device", "cpu"]


@pytest.fixture(scope="module")
def nodrop_configs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """model_configs/ plus tiny-bert without dropout (same tokenizer: same cache)."""
    folder = tmp_path_factory.mktemp("model_configs")
    for path in registry.configs_dir().glob("*.yaml"):
        shutil.copy(path, folder / path.name)
    document = yaml.safe_load((folder / f"{TINY}.yaml").read_text(encoding="utf-8"))
    document["name"] = NODROP
    document["architecture"]["hidden_dropout_prob"] = 0.0
    document["architecture"]["attention_probs_dropout_prob"] = 0.0
    (folder / f"{NODROP}.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")
    return folder


def imdb(*args: str, configs: Path, torchrun: bool = False) -> subprocess.CompletedProcess[str]:
    """`imdb ARGS` in a fresh process, or under `torchrun --nproc_per_node 2`."""
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command = [sys.executable, *(launcher if torchrun else []), "-m", "imdb_cli", *args]
    env = {**os.environ, "IMDB_MODEL_CONFIGS": str(configs), "OMP_NUM_THREADS": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "IMDB_WORKDIR"):
        env.pop(name, None)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def trained_ledger(
    tmp_path: Path, prepared: Path, configs: Path, name: str, *, torchrun: bool
) -> Ledger:
    workspace = copy_workspace(prepared, tmp_path / name)
    imdb(
        "--workdir",
        str(workspace.root),
        "train",
        NODROP,
        *TRAIN,
        "--run-name",
        name,
        configs=configs,
        torchrun=torchrun,
    )
    return read_ledger(workspace.model_runs(NODROP) / name)


def test_two_gloo_processes_train_the_same_model_as_one_process_with_the_same_global_batch(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, nodrop_configs: Path
) -> None:
    prepared = prepared_workspace_root(tmp_path_factory.mktemp("prepared"))
    single = trained_ledger(tmp_path, prepared, nodrop_configs, "single", torchrun=False)
    ddp = trained_ledger(tmp_path, prepared, nodrop_configs, "ddp", torchrun=True)

    assert (single.status, ddp.status) == ("completed", "completed")
    assert ddp.environment.world_size == 2
    assert single.environment.world_size == 1
    one, two = single.epochs[0], ddp.epochs[0]
    assert two.train_samples == one.train_samples == 64
    assert two.train_loss == pytest.approx(one.train_loss, rel=1e-4)
    assert abs(two.train_acc - one.train_acc) * 64 <= 1
    assert two.val_loss == pytest.approx(one.val_loss, rel=1e-4)
    assert abs(two.val_acc - one.val_acc) * one.val_samples <= 1
    assert single.test is not None and ddp.test is not None
    assert ddp.test.samples == single.test.samples
    assert ddp.test.loss == pytest.approx(single.test.loss, rel=1e-4)
    assert abs(ddp.test.acc - single.test.acc) * single.test.samples <= 1


def test_a_global_batch_that_does_not_divide_over_the_processes_is_one_red_line(
    run_cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    result = run_cli("train", TINY, "--batch-size", "7", "--device", "cpu")
    assert_one_red_line(result, "--batch-size 7", "2 processes")


def test_more_processes_than_training_reviews_is_a_clear_error() -> None:
    with pytest.raises(ImdbError, match="4 processes but only 3 training reviews"):
        check_world(Distributed(rank=0, world_size=4), tiny_config(), 3)
