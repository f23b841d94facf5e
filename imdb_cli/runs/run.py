"""A run on disk, `runs/<model>/<run-id>/`: its folder and ledger, listing a model's runs, and
naming new ones. (Which run a name means: select.py.)"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from imdb_cli import guarded_loading
from imdb_cli.config import Invocation, training_options_of
from imdb_cli.data.encoding import Encoder
from imdb_cli.data.entry import DEFAULT_DATASET
from imdb_cli.errors import ImdbError
from imdb_cli.files import file_sha256
from imdb_cli.runs.ledger import LEDGER_NAME, Ledger, read_ledger
from imdb_cli.workspace import Workspace

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
ENCODER_DIR = "encoder"  # the encoder's config.json and tokenizer, so a run loads offline
CONFIG_NAME = "config.yaml"  # the model entry (weights, architecture) and settings of the run


@dataclass(frozen=True)
class Run:
    path: Path
    ledger: Ledger

    @property
    def model(self) -> str:
        return self.ledger.model

    @property
    def run_id(self) -> str:
        return self.ledger.run_id

    def describe(self) -> str:
        return f"{self.model}/{self.run_id} ({self.ledger.status})"

    def dataset_option(self) -> str | None:
        """The `--dataset` that reads this run's data again: the YAML it was prepared from
        (else the data set's name); None for IMDB, the default."""
        data = self.ledger.data
        if data.dataset == DEFAULT_DATASET:
            return None
        return data.dataset_yaml or data.dataset

    def train_invocation(self, workdir: Path | None = None) -> Invocation:
        """The `imdb train` that makes this run again: its model, the settings that differ
        from the model's YAML (all of them when the model is not in the registry), its data
        set, data and name."""
        from imdb_cli import registry  # the registry reads YAMLs: only when asked

        data = self.ledger.data
        try:
            options = training_options_of(registry.load_spec(self.model), self.ledger.config)
        except ImdbError:
            options = tuple(self.ledger.config.to_dict().items())
        extra = {
            "dataset": self.dataset_option(),
            "data_set": data.data_fingerprint,
            "run_name": self.run_id,
        }
        given = tuple((name, value) for name, value in extra.items() if value is not None)
        return Invocation("train", (self.model,), options + given, workdir)

    def resume_invocation(self) -> Invocation:
        """`imdb train MODEL --resume RUN-FOLDER`: the command that finishes this run."""
        return Invocation("train", (self.model,), (("resume", str(self.path)),))

    def tokenizer(self) -> PreTrainedTokenizerBase:
        """The run's own tokenizer (its encoder/ folder), loaded without running code and
        checked against the identity its ledger recorded (check_tokenizer_files)."""
        check_tokenizer_files(self)
        return guarded_loading.load_tokenizer(self.path / ENCODER_DIR)

    def encoder(self) -> Encoder:
        """Texts to token ids exactly as the run's data was tokenized (its tokenizer, max
        length and truncation)."""
        return Encoder(self.tokenizer(), self.ledger.tokenization)


def tokenizer_files_sha256(saved: Iterable[str | Path]) -> dict[str, str]:
    """File name -> sha256 of the files a tokenizer's save_pretrained wrote: the run's
    tokenizer identity, recorded in its ledger (`data.tokenizer_files_sha256`)."""
    paths = sorted({Path(p) for p in saved if Path(p).is_file()})
    return {path.name: file_sha256(path) for path in paths}


def check_tokenizer_files(run: Run) -> None:
    """The run's encoder/ folder holds the tokenizer it was trained with: the files its
    ledger recorded, each with its sha256, and no other file beside them and config.json
    (which the tokenizer loader would read too). Runs made before the record load as they
    are."""
    recorded = run.ledger.data.tokenizer_files_sha256
    if recorded is None:
        return
    folder = run.path / ENCODER_DIR
    ledger = run.path / LEDGER_NAME
    for name, digest in sorted(recorded.items()):
        if Path(name).name != name or name in ("", ".", ".."):
            raise ImdbError(
                f"{ledger}: damaged ledger: 'data.tokenizer_files_sha256' names {name!r:.60}"
            )
        path = folder / name
        if not path.is_file():
            raise ImdbError(f"{path}: the run's tokenizer file is missing")
        if file_sha256(path) != digest:
            raise ImdbError(
                f"{path}: not the tokenizer the run was trained with (its sha256 differs "
                f"from the one {ledger} recorded); refused"
            )
    extra = sorted(p.name for p in folder.iterdir() if p.name not in {*recorded, "config.json"})
    if extra:
        raise ImdbError(
            f"{folder / extra[0]}: not one of the run's tokenizer files ({ledger} records "
            f"{', '.join(sorted(recorded))}); refused"
        )


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def check_run_name(name: str) -> str:
    if "/" in name or "\\" in name or not _RUN_NAME.match(name) or name in (".", ".."):
        raise ImdbError(
            f"--run-name {name!r}: use letters, digits, '.', '_' or '-' "
            "(no path separators), at most 100 characters"
        )
    return name


def new_run_id(workspace: Workspace, model_key: str, run_name: str | None, seed: int) -> str:
    if run_name is not None:
        run_id = check_run_name(run_name)
        if (workspace.model_runs(model_key) / run_id).exists():
            raise ImdbError(
                f"--run-name {run_id!r}: run {model_key}/{run_id} already exists "
                "(choose another name or --resume it)"
            )
        return run_id
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_id = f"{stamp}-seed{seed}"
    suffix = 2
    while (workspace.model_runs(model_key) / run_id).exists():
        run_id = f"{stamp}-seed{seed}-{suffix}"
        suffix += 1
    return run_id


def is_run_dir(path: Path) -> bool:
    return (path / LEDGER_NAME).is_file()


def list_runs(workspace: Workspace, model_key: str) -> list[Run]:
    """Every run of a model, oldest first. A damaged ledger is an error naming it: skipping
    it would make a command answer as if the run did not exist."""
    runs = [
        Run(path, read_ledger(path))
        for path in sorted(workspace.model_runs(model_key).glob("*/"))
        if is_run_dir(path)
    ]
    return sorted(runs, key=lambda run: (run.ledger.created_at, run.run_id))


def latest_run(
    workspace: Workspace,
    model_key: str,
    statuses: tuple[str, ...] = ("completed",),
    dataset: str | None = None,
) -> Run | None:
    """The newest run of a model in one of `statuses` (on `dataset` when given)."""
    matching = [
        run
        for run in list_runs(workspace, model_key)
        if run.ledger.status in statuses and dataset in (None, run.ledger.dataset)
    ]
    return matching[-1] if matching else None
