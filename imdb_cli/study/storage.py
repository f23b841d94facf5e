"""Where a study's trials are queued: an Optuna storage, with heartbeats.

    <workdir>/sweeps/studies.journal          the default: Optuna's journal file storage
    --storage /shared/fs/studies.journal      a journal file other machines also see
    --storage postgresql://user@host/db       a PostgreSQL database (psycopg2)

The storage is only the queue (which trial is held by whom, which are done); the results
stay in the runs' ledgers. Optuna's journal file is made for several processes and
machines (its lock works on NFS); SQLite is refused, as Optuna's documentation warns
against it for parallel workers.

A worker records a heartbeat for the trial it holds every HEARTBEAT seconds; a trial whose
heartbeat is older than the grace period is failed by the next worker that looks
(`optuna.storages.fail_stale_trials`) and queued again by Optuna's
`RetryHeartbeatStaleTrialCallback`. RDBStorage has this built in. Optuna's JournalStorage
has no heartbeat yet (optuna/optuna#6615), so `HeartbeatJournalStorage` adds the four
methods of Optuna's `BaseHeartbeat` to it, keeping the beat as a trial system attribute;
the journal is then treated by Optuna's own `fail_stale_trials` exactly as an RDB is.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imdb_cli.errors import ImdbError, first_line, install_hint
from imdb_cli.workspace import Workspace

# What works from any folder: the extra of this project needs a checkout, these two do not.
DEFAULT_JOURNAL = "studies.journal"  # under <workdir>/sweeps/
HEARTBEAT_ATTR = "imdb:heartbeat"
# Seconds between heartbeats, and how long a silent trial is trusted. The journal compares
# clocks of different machines, so the grace is generous (NTP keeps them within a second).
HEARTBEAT = 15
GRACE_FACTOR = 4
HEARTBEAT_VARIABLE = "IMDB_STUDY_HEARTBEAT"  # seconds; tests set 1


def import_optuna() -> Any:
    """Optuna, or one red line saying how to install it."""
    try:
        import optuna
    except ImportError as exc:
        raise ImdbError(
            f"parallel studies (--workers, --storage) need Optuna: {install_hint('study')}"
        ) from exc
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # Heartbeats with ask-and-tell are what `beating` is for.
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    return optuna


def heartbeat_seconds() -> int:
    text = os.environ.get(HEARTBEAT_VARIABLE, "")
    if not text:
        return HEARTBEAT
    if not text.isdigit() or int(text) < 1:
        raise ImdbError(f"${HEARTBEAT_VARIABLE}={text!r}: give whole seconds, at least 1")
    return int(text)


@dataclass(frozen=True)
class StorageChoice:
    """The storage a study uses: a journal file or a database URL."""

    url: str  # a journal file's absolute path, or a database URL
    kind: str  # "journal" or "rdb"

    @classmethod
    def parse(cls, given: str | None, workspace: Workspace) -> StorageChoice:
        if given is None:
            return cls(str((workspace.root / "sweeps" / DEFAULT_JOURNAL).resolve()), "journal")
        text = given.strip()
        scheme = text.split(":", 1)[0].lower() if "://" in text else ""
        if scheme.startswith("sqlite"):
            raise ImdbError(
                f"--storage {given}: SQLite is not made for parallel workers (Optuna warns "
                "against it); give a journal file path or a postgresql:// URL"
            )
        if scheme.startswith(("postgresql", "postgres", "mysql")):
            return cls(text, "rdb")
        if scheme:
            raise ImdbError(f"--storage {given}: give a journal file path or a postgresql:// URL")
        if not text:
            raise ImdbError("--storage: give a journal file path or a postgresql:// URL")
        return cls(str(Path(text).expanduser().resolve()), "journal")

    def describe(self) -> str:
        """The URL with any password hidden (it is printed and written to logs)."""
        return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", self.url)


def open_storage(
    choice: StorageChoice,
    on_stale: Callable[[Any, Any], None] | None = None,
) -> Any:
    """The storage with heartbeats on; a stale trial is failed and queued again (after
    `on_stale`, which reports it)."""
    optuna = import_optuna()
    interval = heartbeat_seconds()
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback()

    def stale(study: Any, trial: Any) -> None:
        if on_stale is not None:
            on_stale(study, trial)
        retry(study, trial)

    if choice.kind == "rdb":
        return _open_rdb(optuna, choice, interval, stale)
    path = Path(choice.url)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = optuna.storages.journal.JournalFileBackend(str(path))
    except OSError as exc:
        raise ImdbError(f"--storage {path}: cannot open ({exc.strerror or exc})") from exc
    return heartbeat_journal_class()(backend, interval, interval * GRACE_FACTOR, stale)


def _open_rdb(optuna: Any, choice: StorageChoice, interval: int, stale: Callable[..., None]) -> Any:
    scheme, rest = choice.url.split("://", 1)
    url = choice.url
    if scheme.lower() in ("postgresql", "postgres"):
        # psycopg2 named: SQLAlchemy 2.1 would otherwise look for psycopg 3.
        url = f"postgresql+psycopg2://{rest}"
    if url.startswith("postgresql+psycopg2://"):
        try:
            import psycopg2  # noqa: F401
        except ImportError as exc:
            raise ImdbError(
                f"--storage {choice.describe()}: PostgreSQL needs psycopg2: {install_hint('study')}"
            ) from exc
    from sqlalchemy.exc import IntegrityError

    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs={"pool_pre_ping": True},
                heartbeat_interval=interval,
                grace_period=interval * GRACE_FACTOR,
                heartbeat_stale_trial_callback=stale,
            )
        except IntegrityError:
            # Two commands started together on an empty database both create Optuna's
            # tables; PostgreSQL refuses the second one's: its tables are there now.
            if attempt == 4:
                raise
            time.sleep(0.5 * (attempt + 1))
        except Exception as exc:  # sqlalchemy's errors: a refused connection, a password
            raise ImdbError(
                f"--storage {choice.describe()}: cannot open the database ({first_line(exc)})"
            ) from exc
    raise AssertionError("unreachable")


_journal_class: type | None = None


def heartbeat_journal_class() -> type:
    """`JournalStorage` with Optuna's `BaseHeartbeat` (made once, on first use: Optuna is
    imported only when a study runs in parallel)."""
    global _journal_class
    if _journal_class is not None:
        return _journal_class
    import_optuna()
    from optuna.storages import JournalStorage
    from optuna.storages._heartbeat import BaseHeartbeat
    from optuna.trial import TrialState

    running = TrialState.RUNNING

    class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
        """The heartbeat kept as a trial system attribute: the writer's clock time."""

        def __init__(
            self,
            backend: Any,
            interval: int,
            grace: int,
            callback: Callable[..., None] | None,
        ) -> None:
            super().__init__(backend)
            self._interval, self._grace, self._callback = interval, grace, callback

        def record_heartbeat(self, trial_id: int) -> None:
            self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())

        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            now = time.time()
            stale = []
            for trial in self.get_all_trials(study_id, deepcopy=False, states=(running,)):
                # A trial popped from the queue has its start as its first beat (a retried
                # trial carries its dead predecessor's last beat among its attributes).
                started = trial.datetime_start.timestamp() if trial.datetime_start else 0.0
                beat = float(trial.system_attrs.get(HEARTBEAT_ATTR) or 0.0)
                if now - max(started, beat) > self._grace:
                    stale.append(trial._trial_id)
            return stale

        def get_heartbeat_interval(self) -> int | None:
            return self._interval

        def get_heartbeat_stale_trial_callback(self) -> Callable[..., None] | None:
            return self._callback

    _journal_class = HeartbeatJournalStorage
    return _journal_class


@contextlib.contextmanager
def beating(storage: Any, trial_id: int) -> Iterator[None]:
    """Record the trial's heartbeat now and every interval until the block ends."""
    interval = storage.get_heartbeat_interval() or HEARTBEAT
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            # A storage that cannot be reached for a moment must not end the training; the
            # trial is then failed as stale and resumed, which loses no epoch.
            with contextlib.suppress(Exception):
                storage.record_heartbeat(trial_id)

    storage.record_heartbeat(trial_id)
    thread = threading.Thread(target=beat, name=f"heartbeat-{trial_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
