"""Dataset entries: one YAML per data set in dataset_configs/ (or any YAML given by path).

An entry says where the labelled texts come from (a Hub id, or a local folder or file of
parquet, CSV or JSONL files, or the aclImdb layout), which columns hold the text and the
label, the label names (class ids follow their order), and how the splits are made: merged
and split anew with a seed and fractions, or kept as the source gives them (`split: given`).
Every error names the file and the key.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imdb_cli import registry
from imdb_cli.config import ENTRY_NAME, read_yaml_entry
from imdb_cli.errors import ImdbError, shown

CONFIGS_ENV = "IMDB_DATASET_CONFIGS"
DEFAULT_DATASET = "imdb"
# Caches and ledgers written before dataset entries existed hold IMDB and name no labels.
LEGACY_LABELS = ("negative", "positive")
STUDY_FRACTIONS = (0.8, 0.1, 0.1)
DATA_SUFFIXES = (".parquet", ".csv", ".jsonl")
GIVEN = "given"
# Which source splits `split: given` reads as train, validation and test, when `splits`
# does not name them: the first name the source has of each.
GIVEN_NAMES = (("train",), ("validation", "valid", "val", "dev"), ("test",))
_KEYS = (
    "name",
    "description",
    "source",
    "config",
    "splits",
    "local_copy_env",
    "text",
    "label",
    "labels",
    "split",
)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_WHOLE_NUMBER = re.compile(r"^-?\d+$")


@dataclass(frozen=True)
class SplitPolicy:
    """How the train/validation/test splits are made: anew (seed, fractions) or as given."""

    given: bool = False
    seed: int = 42
    fractions: tuple[float, float, float] = STUDY_FRACTIONS

    def describe(self) -> str:
        if self.given:
            return "the source's own train/validation/test splits"
        shares = "/".join(f"{100 * f:g}" for f in self.fractions)
        return f"merged and split {shares} by seed"


@dataclass(frozen=True)
class DatasetEntry:
    """One data set: where its rows come from, what they hold, how they are split."""

    name: str
    path: Path  # the YAML file
    description: str
    source: str  # as written: a Hub id, or a path relative to the YAML
    config: str | None  # the Hub config (a local copy may hold it as a subfolder)
    splits: tuple[str, ...] | None  # the source's splits to read, in order (None: all)
    local_copy_env: str | None  # a variable that may name a local copy of the source
    text: str  # the text column
    label: str  # the label column: label names or class ids
    labels: tuple[str, ...]  # class names, by class id
    split: SplitPolicy

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def key(self, name: str) -> str:
        """`<file>: key '<name>'`, the start of an error about one key."""
        return f"{self.path}: key '{name}'"

    @property
    def is_hub(self) -> bool:
        """A Hub id (`org/name`) that is not also a file or folder beside the YAML."""
        return bool(_HUB_ID.match(self.source)) and not (self.path.parent / self.source).exists()

    @property
    def source_path(self) -> Path:
        """The local file or folder `source` names (relative to the YAML's folder)."""
        path = Path(self.source).expanduser()
        return path if path.is_absolute() else self.path.parent / path

    @property
    def numbered_labels(self) -> bool:
        """Label names that are whole numbers (`labels: [1, 2, 3, 4, 5]` for star ratings):
        an integer label column then holds the names, not class ids."""
        return all(_WHOLE_NUMBER.match(name) for name in self.labels)


def configs_dir() -> Path:
    """dataset_configs/ of this checkout, or $IMDB_DATASET_CONFIGS."""
    env = os.environ.get(CONFIGS_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "dataset_configs"


def known_datasets() -> list[str]:
    return registry.entry_names(configs_dir())


def load_dataset_entry(key: str | None, flag: str = "--dataset") -> DatasetEntry:
    """The entry `key` names (a name in dataset_configs/ or a YAML path); None: IMDB."""
    folder = configs_dir()
    key = key or DEFAULT_DATASET
    if _HUB_ID.match(key) and not key.endswith(registry.YAML_SUFFIXES):
        raise ImdbError(
            f"{flag} {key}: {flag} names a dataset entry (a name in {folder} or a YAML file); "
            f"to read the Hub dataset {key}, write a YAML with `source: {key}` "
            f"(like {folder / (DEFAULT_DATASET + '.yaml')}) and give its path"
        )
    path = registry.resolve_entry(key, folder, flag, kind="dataset")
    entry = read_dataset_entry(path)
    in_folder = path.resolve().parent == folder.resolve()
    if in_folder and entry.name != path.stem:
        raise ImdbError(f"{path}: key 'name' is {shown(entry.name)} but the file is {path.name}")
    if not in_folder and entry.name in known_datasets():
        raise ImdbError(
            f"{path}: key 'name': '{entry.name}' is already the name of "
            f"{folder / (entry.name + '.yaml')}; give this data set a name of its own"
        )
    return entry


def read_dataset_entry(path: Path) -> DatasetEntry:
    """Read and check one dataset YAML; errors name the file and key."""
    data = read_yaml_entry(path, _KEYS)

    def text(key: str, *, required: bool = True) -> str | None:
        value = data.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.strip():
            what = "missing" if value is None else f"must be a non-empty text (got {shown(value)})"
            raise ImdbError(f"{path}: key '{key}' {what}")
        return value.strip()

    name = text("name")
    assert name is not None
    if not ENTRY_NAME.match(name):
        raise ImdbError(
            f"{path}: key 'name' {shown(name)}: use letters, digits, '.', '_' or '-' "
            "(a data set's name is how runs and caches refer to it)"
        )
    description = data.get("description") or ""
    if not isinstance(description, str):
        raise ImdbError(f"{path}: key 'description' must be a text (got {shown(description)})")
    env = text("local_copy_env", required=False)
    if env is not None and not _ENV_NAME.match(env):
        raise ImdbError(f"{path}: key 'local_copy_env' {shown(env)} is not a variable name")
    columns = {key: text(key) for key in ("source", "text", "label")}
    if columns["text"] == columns["label"]:
        raise ImdbError(
            f"{path}: keys 'text' and 'label' both name column {shown(columns['text'])}; the "
            "texts and their labels are two columns"
        )
    return DatasetEntry(
        name=name,
        path=path,
        description=description.strip(),
        source=str(columns["source"]),
        config=text("config", required=False),
        splits=_splits(data.get("splits"), path),
        local_copy_env=env,
        text=str(columns["text"]),
        label=str(columns["label"]),
        labels=_labels(data.get("labels"), path),
        split=_policy(data.get("split"), path),
    )


def _splits(value: Any, path: Path) -> tuple[str, ...] | None:
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, str) and v.strip() for v in value)
    ):
        raise ImdbError(
            f"{path}: key 'splits' must list the source's splits to read, like [train, test] "
            f"(got {shown(value)})"
        )
    names = tuple(v.strip() for v in value)
    if len(set(names)) != len(names):
        raise ImdbError(f"{path}: key 'splits' names a split twice ({', '.join(names)})")
    return names


def _labels(value: Any, path: Path) -> tuple[str, ...]:
    where = f"{path}: key 'labels'"
    if value is None:
        raise ImdbError(f"{where} missing: list the class names, like [bad, good]")
    if not isinstance(value, list):
        raise ImdbError(f"{where} must be a list of class names (got {shown(value)})")
    names = []
    for item in value:
        # YAML reads yes/no/true/false as booleans and 1.5 as a number: names must be text.
        if isinstance(item, bool) or not isinstance(item, str | int) or not str(item).strip():
            raise ImdbError(
                f"{where}: {shown(item)} is not a class name (write names as text; quote "
                "yes, no, true or false)"
            )
        names.append(str(item).strip())
    if len(names) < 2:
        raise ImdbError(f"{where}: a classifier needs at least two classes (got {len(names)})")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ImdbError(f"{where}: {', '.join(repeated)} is listed twice")
    return tuple(names)


def _policy(value: Any, path: Path) -> SplitPolicy:
    where = f"{path}: key 'split'"
    if value is None:
        return SplitPolicy()
    if value == GIVEN:
        return SplitPolicy(given=True)
    if not isinstance(value, dict):
        raise ImdbError(
            f"{where} must be `given` or a mapping like {{seed: 42, fractions: [0.8, 0.1, 0.1]}} "
            f"(got {shown(value)})"
        )
    unknown = sorted(str(k) for k in set(value) - {"seed", "fractions"})
    if unknown:
        raise ImdbError(f"{where}: unknown key(s) {', '.join(unknown)}; known: seed, fractions")
    seed = value.get("seed", 42)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ImdbError(f"{where}.seed must be a whole number >= 0 (got {shown(seed)})")
    fractions = value.get("fractions", list(STUDY_FRACTIONS))
    if not (
        isinstance(fractions, list)
        and len(fractions) == 3
        and all(_is_number(f) and f > 0 for f in fractions)
    ):
        raise ImdbError(
            f"{where}.fractions must be three positive numbers for train, validation and "
            f"test, like [0.8, 0.1, 0.1] (got {shown(fractions)})"
        )
    if not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ImdbError(f"{where}.fractions must add up to 1 (got {sum(fractions):g})")
    train, val, test = (float(f) for f in fractions)
    return SplitPolicy(given=False, seed=seed, fractions=(train, val, test))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
