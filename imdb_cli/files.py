"""Atomic file writes: a temp file beside the final one, fsync, then rename.

A kill or a full disk mid-write leaves the previous file intact and never a half file
under the final name. Temp files and folders are named `.tmp-<name>-<pid>-<random>`, so
`clean_stale_temps` can tell the ones whose process died from the ones still being written.
A write that fails because of the disk (full, read-only, not permitted) is one
ImdbError naming the file, whichever library was writing.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
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


_TEMP_NAME = re.compile(rf"^{re.escape(TMP_PREFIX)}(?P<final>.+)-(?P<pid>\d+)-[0-9a-f]{{8}}$")


def temp_owner(name: str, final: str | None = None) -> int | None:
    """The pid of the process that wrote the temp file `name` (of `final`, when given);
    None when `name` is not one of ours."""
    match = _TEMP_NAME.match(name)
    if match is None or (final is not None and match["final"] != final):
        return None
    return int(match["pid"])


# Below this many free bytes, a failed write is taken for a full disk: numpy and torch
# report a short write without the errno ("requested and written", "unexpected pos").
_NEARLY_FULL = 1 << 20


def _os_error(exc: BaseException) -> OSError | None:
    """The OSError with an errno behind `exc` (libraries wrap it), if any."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno is not None:
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _disk_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < _NEARLY_FULL
    except OSError:
        return False


def write_error(path: Path, exc: BaseException) -> ImdbError | None:
    """The one-line error for a write of `path` that failed with `exc`; None when `exc`
    is not about the disk (a bug or a user error, to be raised as it is)."""
    found = _os_error(exc)
    code = found.errno if found is not None else None
    text = str(exc)
    full = code == errno.ENOSPC or "No space left" in text or "os error 28" in text
    if full or (found is None and _disk_full(path.parent)):
        return ImdbError(
            f"no space left on device while writing {path}; earlier files are intact "
            "(free some space and rerun)"
        )
    if code == errno.EROFS:
        return ImdbError(f"cannot write {path}: the file system is read-only")
    if code in (errno.EACCES, errno.EPERM):
        return ImdbError(f"cannot write {path}: permission denied")
    if found is not None:
        return ImdbError(f"cannot write {path}: {found.strerror or found}")
    if isinstance(exc, OSError):
        return ImdbError(f"cannot write {path}: {text or 'input/output error'}")
    return None


def os_error_message(exc: OSError) -> str:
    """One line for an OSError no command expected (the CLI's last resort)."""
    where = exc.filename if exc.filename is not None else "a file"
    if exc.errno == errno.ENOSPC:
        return f"no space left on device while writing {where}"
    if exc.errno == errno.EROFS:
        return f"cannot write {where}: the file system is read-only"
    return f"{where}: {exc.strerror or exc}"


@functools.cache
def _umask() -> int:
    """The process's umask (read once: reading it means setting it for a moment)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _plain_mode(file: Path) -> None:
    """Give `file` the mode a plain `open()` would have given it: safetensors writes its
    files 0600, which would hide checkpoints and exports from the users the folder lets in."""
    os.chmod(file, 0o666 & ~_umask())


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
        _plain_mode(tmp)
        os.replace(tmp, path)
    except ImdbError:
        _discard(tmp)
        raise
    except Exception as exc:
        problem = write_error(path, exc)  # before the unlink frees the space
        _discard(tmp)
        if problem is None:
            raise
        raise problem from exc
    except BaseException:
        _discard(tmp)
        raise


def _discard(tmp: Path) -> None:
    with contextlib.suppress(OSError):  # a read-only folder: there is nothing to remove
        tmp.unlink(missing_ok=True)


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


FolderState = tuple[int, int, int] | None  # a folder's (device, inode, mtime); None: absent


def folder_state(path: Path) -> FolderState:
    """What is at `path` now (not following a link), to tell later whether it changed."""
    try:
        found = path.lstat()
    except FileNotFoundError:
        return None
    return (found.st_dev, found.st_ino, found.st_mtime_ns)


@contextlib.contextmanager
def _locked_folder(folder: Path) -> Iterator[None]:
    """An exclusive OS lock on `folder` itself (flock on its descriptor), held briefly."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@contextlib.contextmanager
def atomic_dir(path: Path, expected: FolderState | bool = True) -> Iterator[Path]:
    """Yield a temp folder to fill; on success it takes the place of the folder `path`.

    The files are fsynced, then the folder renamed. An existing `path` (the caller decided it
    may go) is first renamed aside and deleted once the new folder is in place. On any error
    or interrupt the temp folder is deleted and `path` is untouched.

    `expected`: what the caller saw at `path` when it decided it may go (`folder_state`).
    The rename then happens only if `path` is still that, checked and renamed under a lock
    on the parent folder: of two processes writing one folder at once, exactly one wins and
    the other stops with one line, its own folder discarded. True: no such check.
    """
    tmp = temp_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        yield tmp
        for file in tmp.rglob("*"):
            if file.is_file():
                with open(file, "rb") as handle:
                    os.fsync(handle.fileno())
                _plain_mode(file)
        with _locked_folder(path.parent):
            if expected is not True and folder_state(path) != expected:
                raise ImdbError(
                    f"{path}: another process wrote it while this one was writing; its folder "
                    "is kept and this one was discarded"
                )
            aside = temp_path(path) if path.exists() or path.is_symlink() else None
            if aside is not None:
                os.rename(path, aside)
            os.rename(tmp, path)
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
    except ImdbError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except Exception as exc:
        problem = write_error(path, exc)  # before the removal frees the space
        shutil.rmtree(tmp, ignore_errors=True)
        if problem is None:
            raise
        raise problem from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


LINK_REFUSED = "imdb never writes through a symbolic link in its workspace"


def open_no_follow(path: Path, flags: int) -> int:
    """`os.open` of a regular file that imdb keeps in its workspace (a lock, a log), never
    through a symbolic link: a link planted under the file's name would otherwise let an
    append or a truncate reach a file outside the workspace. A FIFO or device there is
    refused too (and does not block the open)."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ImdbError(f"{path}: refused, it is a symbolic link; {LINK_REFUSED}") from exc
        if exc.errno == errno.ENXIO:  # a FIFO without a reader
            raise ImdbError(f"{path}: refused, it is not a regular file") from exc
        raise write_error(path, exc) or exc from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ImdbError(f"{path}: refused, it is not a regular file")
    return fd


def refuse_links(*paths: Path) -> None:
    """One red line if any of `paths` is a symbolic link (checked with lstat, not followed):
    folders and files of the workspace that imdb writes into."""
    for path in paths:
        if path.is_symlink():
            raise ImdbError(f"{path}: refused, it is a symbolic link; {LINK_REFUSED}")


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


def clean_stale_temps(parent: Path, of: str | None = None) -> list[Path]:
    """Remove the temp files and folders in `parent` left by processes that died (only
    those of the file or folder named `of`, when given: a folder of the user's)."""
    removed: list[Path] = []
    if parent.is_symlink() or not parent.is_dir():  # never tidy through a link
        return removed
    for entry in parent.iterdir():
        pid = temp_owner(entry.name, of)
        if pid is not None and not pid_alive(pid):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
            debug(f"removed {entry} (left by a process that died)")
    return removed
