"""One trainer per run: an exclusive OS lock on `runs/<model>/<run-id>/train.lock`.

The lock (fcntl.flock) is held for as long as a process trains the run, and the OS
releases it when the process ends, however it ends: a SIGKILL leaves no stale lock, and a
reused pid cannot fool it. The file records the holder's pid and host, so that a second
`imdb train` can say who trains the run. Under torchrun rank 0 alone takes it.
Also here: tidying a model's runs before training (temp files of killed writes, run
folders a kill left without a ledger), which the lock tells apart from live ones.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from imdb_cli.console import info
from imdb_cli.errors import ImdbError
from imdb_cli.files import clean_stale_temps, open_no_follow, refuse_links
from imdb_cli.runs.checkpoints import CHECKPOINT_DIR
from imdb_cli.runs.folder import LOG_NAME
from imdb_cli.runs.ledger import LEDGER_NAME
from imdb_cli.training.distributed import Distributed, from_rank0
from imdb_cli.workspace import Workspace

LOCK_NAME = "train.lock"
# A folder younger than this may be a run another process is creating right now.
_YOUNG_SECONDS = 60.0
_HOLDER_TRIES = 40  # reads of the lock's holder, 50 ms apart


def _try_lock(run_dir: Path) -> IO[str] | str:
    """The open, locked lock file; or, when another process holds it, who that is.

    Opened without following a link (files.open_no_follow) and truncated only once locked,
    through the open file: a link planted as train.lock never lets a truncate reach a file
    outside the run."""
    # What the trainer writes into besides atomic renames (which replace a link, never
    # follow it): the folder itself, its checkpoints folder, the log and this lock.
    refuse_links(run_dir, run_dir / CHECKPOINT_DIR, run_dir / LOG_NAME)
    fd = open_no_follow(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT)
    handle = os.fdopen(fd, "r+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(handle)
        handle.close()
        return holder
    handle.seek(0)
    handle.truncate()
    handle.write(f"process {os.getpid()} on {socket.gethostname()}\n")
    handle.flush()
    return handle


def _holder(handle: IO[str]) -> str:
    """Who holds the lock, as the holder wrote it. It writes that just after taking the
    lock, so a busy machine can show the file empty for a moment: read again briefly."""
    for _ in range(_HOLDER_TRIES):
        handle.seek(0)
        holder = handle.read().strip()
        if holder:
            return holder
        time.sleep(0.05)
    return "another process"


@contextlib.contextmanager
def holding_run(run_dir: Path, world: Distributed, describe: str) -> Iterator[None]:
    """Train `run_dir` only while holding its lock; one red line if someone else holds it."""
    handle: IO[str] | str | None = _try_lock(run_dir) if world.main else None
    refused = from_rank0(world, handle if isinstance(handle, str) else None)
    if refused is not None:
        raise ImdbError(
            f"run {describe} is being trained by {refused} (it holds {run_dir / LOCK_NAME}); "
            "wait for it to end or stop it, then resume"
        )
    try:
        yield
    finally:
        if handle is not None and not isinstance(handle, str):
            handle.close()  # closing releases the lock


def is_locked(run_dir: Path) -> bool:
    """Whether a live process holds the run's lock (trains it now)."""
    if not (run_dir / LOCK_NAME).is_file():
        return False
    handle = _try_lock(run_dir)
    if isinstance(handle, str):
        return True
    handle.close()
    return False


def tidy_model_runs(workspace: Workspace, model_key: str) -> None:
    """Remove what killed processes left among a model's runs: temp files of interrupted
    writes, and run folders with no ledger (a kill before their first record)."""
    parent = workspace.model_runs(model_key)
    if not parent.is_dir():
        return
    with contextlib.suppress(OSError):  # tidying never stops a training (a read-only disk)
        _tidy(parent)


def _tidy(parent: Path) -> None:
    # A link among the runs is left as it is: tidying never follows one out of the workspace.
    for run_dir in sorted(p for p in parent.iterdir() if p.is_dir() and not p.is_symlink()):
        age = time.time() - run_dir.lstat().st_mtime  # before removing temps touches it
        clean_stale_temps(run_dir)
        clean_stale_temps(run_dir / CHECKPOINT_DIR)
        if (run_dir / LEDGER_NAME).exists() or (run_dir / LEDGER_NAME).is_symlink():
            continue
        try:
            locked = is_locked(run_dir)
        except ImdbError:  # its lock is a link or no file: not ours to remove
            continue
        if age < _YOUNG_SECONDS or locked:
            continue
        shutil.rmtree(run_dir, ignore_errors=True)
        info(f"removed {run_dir}: a run folder with no ledger (its process was killed)")
