"""Real faults for the fault-injection tests: a full disk, a read-only folder, damaged files.

A full disk is a small tmpfs and a read-only folder a read-only bind mount: both need root
(chmod does not stop root). Where mounting is not permitted the test is skipped, saying
why; the full-disk cases are also covered by an injected ENOSPC, which needs no mount.
Mounts are undone when the test ends, however it ends.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, check=False)


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def _mounting_refused(result: subprocess.CompletedProcess[str], what: str) -> None:
    if result.returncode != 0:
        pytest.skip(f"cannot {what} here ({result.stderr.strip() or 'mount failed'})")


@contextlib.contextmanager
def full_disk(folder: Path, size: str = "2m", leave_free: int = 0) -> Iterator[Path]:
    """`folder` becomes a tmpfs of `size`, filled until `leave_free` bytes are left."""
    if shutil.which("mount") is None:
        pytest.skip("cannot mount a small tmpfs here (no mount command)")
    folder.mkdir(parents=True, exist_ok=True)
    _mounting_refused(_mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)), "mount")
    try:
        fill(folder, leave_free)
        yield folder
    finally:
        _umount(folder)


def fill(folder: Path, leave_free: int = 0) -> None:
    """Write a ballast file until at most `leave_free` bytes of the disk are left."""
    ballast = folder / ".ballast"
    free = shutil.disk_usage(folder).free - leave_free
    with ballast.open("ab") as handle:
        while free > 0:
            try:
                handle.write(b"\0" * min(free, 1 << 16))
                handle.flush()
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
            free = shutil.disk_usage(folder).free - leave_free


def free_up(folder: Path) -> None:
    (folder / ".ballast").unlink(missing_ok=True)


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """`folder` (with what it holds) becomes read-only, for root too."""
    if shutil.which("mount") is None:
        pytest.skip("cannot bind-mount read-only here (no mount command)")
    folder.mkdir(parents=True, exist_ok=True)
    _mounting_refused(_mount("--bind", str(folder), str(folder)), "bind-mount")
    try:
        _mounting_refused(_mount("-o", "remount,ro,bind", str(folder)), "remount read-only")
        yield folder
    finally:
        _umount(folder)


def enospc() -> OSError:
    return OSError(errno.ENOSPC, "No space left on device")


def flip_byte(path: Path, offset: int = -100) -> None:
    """Damage a file without changing its size (what a length check cannot see)."""
    content = bytearray(path.read_bytes())
    content[offset] ^= 0xFF
    path.write_bytes(bytes(content))


def leftover_temps(folder: Path) -> list[Path]:
    return sorted(folder.rglob(".tmp-*"))
