"""A real PostgreSQL server for a test: Debian's `postgresql` package, a cluster made by
initdb in a temporary folder, started as an unprivileged user on a free local port, and
stopped (immediately) at the end.

`.ci/run` installs the package where it is missing. A machine without it, or where the
server cannot start, skips the test with the reason.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

USERS = ("postgres", "nobody")  # who runs the server when the tests run as root


def server_binaries() -> Path | None:
    """The folder of initdb and pg_ctl (Debian keeps them out of PATH)."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(versions[0]).parent if versions else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_user() -> tuple[list[str], pwd.struct_passwd | None]:
    """The command prefix that runs a program as an unprivileged user (initdb refuses
    root), and that user; nothing when the tests already run unprivileged."""
    if os.geteuid() != 0:
        return [], None
    for name in USERS:
        with contextlib.suppress(KeyError):
            return ["runuser", "-u", name, "--"], pwd.getpwnam(name)
    pytest.skip(f"PostgreSQL cannot run as root and none of the users {USERS} exists")


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A running server; yields its URL (database `postgres`, trust authentication)."""
    binaries = server_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL is not installed (apt-get install -y postgresql)")
    pytest.importorskip("psycopg2", reason="no psycopg2 (pip install psycopg2-binary)")
    prefix, user = _as_user()
    folder = Path(tempfile.mkdtemp(prefix="imdb-pg-"))
    data, log = folder / "data", folder / "server.log"
    if user is not None:
        os.chown(folder, user.pw_uid, user.pw_gid)
    port = free_port()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*prefix, *args], capture_output=True, text=True, timeout=120, check=False
        )

    made = run(str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-N")
    if made.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"initdb failed: {(made.stderr or made.stdout).strip()[-300:]}")
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    started = run(str(binaries / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w",
                  "start")  # fmt: skip
    if started.returncode != 0:
        text = log.read_text(errors="replace")[-300:] if log.exists() else started.stderr
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"the PostgreSQL server did not start: {text.strip()}")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        run(str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)
