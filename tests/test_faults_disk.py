"""Fault injection, the disk: full or read-only while imdb writes. Each is one red line
naming the file (\"no space left on device\", \"read-only\"), and what was there stays."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from analysis_support import imdb
from cli_support import assert_one_red_line
from fault_support import enospc, free_up, full_disk, leftover_temps, read_only

from imdb_cli.errors import ImdbError
from imdb_cli.files import write_atomic, write_json_atomic
from imdb_cli.runs import checkpoints
from imdb_cli.workspace import Workspace

pytestmark = pytest.mark.usefixtures("single_thread")  # conftest.py

# --------------------------------------------------------------------------- each writer

_WEIGHTS = torch.nn.Linear(256, 256)  # 257 kB of weights


def _save_numpy(tmp: Path) -> None:
    with tmp.open("wb") as handle:  # given a path, np.save would add ".npy" to it
        np.save(handle, np.zeros(50_000))


WRITERS = {
    "json": lambda path: write_json_atomic(path, {"values": list(range(20_000))}),
    "safetensors": lambda path: checkpoints.save_weights(_WEIGHTS, path),
    "torch state": lambda path: checkpoints.save_train_state(path, {"state": torch.zeros(50_000)}),
    "numpy": lambda path: write_atomic(path, _save_numpy),
}


@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_full_disk_is_named_whichever_library_writes(tmp_path: Path, writer: str) -> None:
    with full_disk(tmp_path / "disk", size="1m", leave_free=64 * 1024) as disk:
        target = disk / "sub" / "file.bin"
        (disk / "sub").mkdir()
        target.write_bytes(b"earlier")
        with pytest.raises(ImdbError, match="no space left on device while writing") as caught:
            WRITERS[writer](target)
        assert str(target) in caught.value.message
        assert target.read_bytes() == b"earlier"  # the earlier file is intact
        assert leftover_temps(disk) == []
        free_up(disk)
        WRITERS[writer](target)  # with space again, the same write works
        assert target.stat().st_size > len(b"earlier")


@pytest.mark.parametrize("writer", list(WRITERS))
def test_an_injected_enospc_is_named_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer: str
) -> None:
    """The same, without a mount: the fsync after writing reports the full disk."""
    target = tmp_path / "file.bin"
    target.write_bytes(b"earlier")

    def no_space(fd: int) -> None:
        raise enospc()

    monkeypatch.setattr("imdb_cli.files.os.fsync", no_space)
    with pytest.raises(ImdbError, match=f"no space left on device while writing {target}"):
        WRITERS[writer](target)
    assert target.read_bytes() == b"earlier"
    assert leftover_temps(tmp_path) == []


@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_read_only_folder_is_named_before_anything_is_written(
    tmp_path: Path, writer: str
) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "file.bin").write_bytes(b"earlier")
    with read_only(folder):
        with pytest.raises(ImdbError, match="read-only") as caught:
            WRITERS[writer](folder / "file.bin")
        assert str(folder / "file.bin") in caught.value.message
        with pytest.raises(ImdbError, match="read-only"):
            WRITERS[writer](folder / "new" / "file.bin")  # the folder cannot be made either
    assert (folder / "file.bin").read_bytes() == b"earlier"


def test_an_error_that_is_not_the_disks_is_not_disguised_as_one(tmp_path: Path) -> None:
    def buggy(tmp: Path) -> None:
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        write_atomic(tmp_path / "x", buggy)
    assert leftover_temps(tmp_path) == []


# --------------------------------------------------------------------------- commands


def test_compare_output_into_a_read_only_folder(
    trained_workspace: Workspace, tmp_path: Path
) -> None:
    folder = tmp_path / "reports"
    folder.mkdir()
    with read_only(folder):
        result = imdb(trained_workspace, "compare", "tiny-bert", "--output", str(folder / "r.md"))
    assert_one_red_line(result, str(folder / "r.md"), "read-only")


def test_compare_output_onto_a_full_disk(trained_workspace: Workspace, tmp_path: Path) -> None:
    with full_disk(tmp_path / "disk", size="1m") as disk:
        result = imdb(
            trained_workspace, "compare", "--format", "json", "--output", str(disk / "r.json")
        )
        assert_one_red_line(result, str(disk / "r.json"), "no space left on device")
        assert leftover_temps(disk) == []
        free_up(disk)
        result = imdb(
            trained_workspace, "compare", "--format", "json", "--output", str(disk / "r.json")
        )
        assert result.exit_code == 0, result.output
        assert json.loads((disk / "r.json").read_text())


@pytest.mark.parametrize("command", ["attention", "tsne"])
def test_analysis_into_a_read_only_workspace(trained_workspace: Workspace, command: str) -> None:
    args = {
        "attention": ["attention", "--review", "A fine film.", "--models", "tiny-bert"],
        "tsne": ["tsne", "tiny-bert", "--n-samples", "20", "--perplexity", "5"],
    }[command]
    trained_workspace.analysis.mkdir(exist_ok=True)
    with read_only(trained_workspace.analysis):
        result = imdb(trained_workspace, *args)
    assert_one_red_line(result, str(trained_workspace.analysis))
    assert "read-only" in result.output.lower()
    assert leftover_temps(trained_workspace.root) == []


def test_an_unexpected_os_error_in_a_command_is_one_line(
    trained_workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI's last resort: an OSError nobody expected still names its file."""

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EIO, "Input/output error", "/dev/imaginary")

    monkeypatch.setattr("imdb_cli.compare.comparison.compare", broken)
    result = imdb(trained_workspace, "compare")
    assert_one_red_line(result, "/dev/imaginary", "Input/output error")
