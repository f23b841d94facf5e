"""Atomic writes leave files with the mode the user's umask gives, whatever the writer."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import torch
from safetensors.torch import save_file

from imdb_cli.files import atomic_dir, atomic_path


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_a_safetensors_file_written_atomically_is_as_readable_as_any_other(
    tmp_path: Path,
) -> None:
    weights = tmp_path / "weights.safetensors"
    with atomic_path(weights) as tmp:
        save_file({"w": torch.zeros(2)}, str(tmp))
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert _mode(weights) == _mode(plain) == 0o666 & ~_umask()


def test_files_in_an_atomic_folder_get_the_usual_mode(tmp_path: Path) -> None:
    out = tmp_path / "export"
    with atomic_dir(out) as folder:
        save_file({"w": torch.zeros(2)}, str(folder / "model.safetensors"))
        (folder / "config.json").write_text("{}")
    modes = {p.name: _mode(p) for p in out.iterdir()}
    assert modes == {name: 0o666 & ~_umask() for name in ("model.safetensors", "config.json")}
