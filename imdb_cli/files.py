"""Atomic file writes: a temp file beside the final one, fsync, then rename.

A kill or a full disk mid-write leaves the previous file intact and never a half file
under the final name. Temp files and folders are named `.tmp-<name>-<pid>-<random>`, so
`clean_stale_temps` can tell the ones whose process died from the ones still being written.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from imdb_cli.console import debug
from imdb_cli.errors import ImdbError

TMP_PREFIX = ".tmp-"


def temp_path(final: Path) -> Path:
    """A fresh name beside `final` for a temp file or folder that will become `final`."""
    return final.parent / f"{TMP_PREFIX}{final.name}-{os.getpid()}-{secrets.token_hex(4)}"


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path to write; on success it is fsynced and replaces `path` atomically."""
    tmp = temp_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.touch(exist_ok=False)
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC:
            raise ImdbError(f"disk full while writing {path}; earlier files are intact") from exc
        raise ImdbError(f"cannot write {path}: {exc.strerror or exc}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    with atomic_path(path) as tmp:
        write(tmp)


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def save_array_atomic(path: Path, array: np.ndarray) -> None:
    """`array` as a .npy file (through a handle: np.save would add .npy to the temp name)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array)


def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs on this machine (whose temp file or run is it?)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def clean_stale_temps(parent: Path) -> list[Path]:
    """Remove the temp files and folders in `parent` left by processes that died."""
    removed: list[Path] = []
    if not parent.is_dir():
        return removed
    for entry in parent.iterdir():
        if not entry.name.startswith(TMP_PREFIX):
            continue
        parts = entry.name.rsplit("-", 2)
        if len(parts) != 3 or not parts[1].isdigit():
            continue
        if not pid_alive(int(parts[1])):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
            debug(f"removed {entry} (left by a process that died)")
    return removed
