"""Dataset entries: IMDB's entry reads exactly what the study read; other entries (local
CSV, parquet, JSONL, aclImdb folders, given splits) read their rows; bad entries are one
red line naming the file and key."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cli_support import assert_one_red_line
from data_support import (
    MY_REVIEWS_YAML,
    THREE_LABELS,
    imdb_source,
    three_class_reviews,
    write_csv,
    write_my_reviews,
)

from imdb_cli import registry
from imdb_cli.data.entry import DatasetEntry, load_dataset_entry, read_dataset_entry
from imdb_cli.data.locate import find_tokenized_cache
from imdb_cli.data.prepare import prepare
from imdb_cli.data.sources import DataSource, load_raw
from imdb_cli.data.split import SPLITS, SplitOptions, ids_sha256, make_split
from imdb_cli.data.tokenized import load_split
from imdb_cli.errors import ImdbError
from imdb_cli.workspace import Workspace

TINY = "tiny-bert"

# Computed with the code on main before dataset entries existed (commit 776350c), on the
# real IMDB copy: the data fingerprint, sha256 (first 16 hex digits) of each split's review
# ids, and of the tokenized arrays of a 1,000-review sample at 64 tokens (tiny-bert).
IMDB_CONTENT_SHA256 = "2e1defd58173e4463c6beb9d68f3cd3d49e65677ac7c86bf478f808691b3f38b"
IMDB_FINGERPRINT = "2e1defd58173"
IMDB_SPLIT_IDS = {
    "train": "511ba707aa85433f",
    "val": "599f270482629b92",
    "test": "8a9ede1c423ecb35",
}
IMDB_SAMPLE_DIR = "berttokenizer-6c88ef7d58-len64-seed42"
IMDB_SAMPLE_ARRAYS = {
    "train": {
        "review_ids": "04270927dd94e31b",
        "input_ids": "fb564c21b89ef9ea",
        "lengths": "9eadb00cca10b977",
        "labels": "6c5d6190a2d921e1",
    },
    "val": {
        "review_ids": "108a2529118dfefa",
        "input_ids": "da8964ab34fb947c",
        "lengths": "10977dc31f1c4f74",
        "labels": "076eb61f202a8237",
    },
    "test": {
        "review_ids": "a956bbff887617e3",
        "input_ids": "08142b794d9e7813",
        "lengths": "0b2ddff31d26e53a",
        "labels": "3473b4bc908573dc",
    },
}
# The same, for the whole data set at 128 tokens (the slow test).
IMDB_FULL_DIR = "berttokenizer-6c88ef7d58-len128-seed42"
IMDB_FULL_ARRAYS = {
    "train": {
        "review_ids": "511ba707aa85433f",
        "input_ids": "04f2651ce0b15dc8",
        "lengths": "8753e72ceff5e47d",
        "labels": "18e7475b5a6e9be8",
    },
    "val": {
        "review_ids": "599f270482629b92",
        "input_ids": "71d5881235ae2f0e",
        "lengths": "93f4b96b3584e5a3",
        "labels": "69d33f68a2c2b0d8",
    },
    "test": {
        "review_ids": "8a9ede1c423ecb35",
        "input_ids": "8286019860ec8575",
        "lengths": "04d3d580b2fe8cde",
        "labels": "9d71501de66eddc4",
    },
}


def _sha16(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


def _arrays(cache) -> dict[str, dict[str, str]]:
    names = ("review_ids", "input_ids", "lengths", "labels")
    return {s: {n: _sha16(getattr(load_split(cache, s), n)) for n in names} for s in SPLITS}


# --------------------------------------------------------------------------- IMDB unchanged


def test_the_imdb_entry_reads_the_study_split_and_tokens_unchanged(
    real_imdb_dir: Path, tmp_path: Path
) -> None:
    entry = load_dataset_entry(None)
    assert entry.name == "imdb" and entry.labels == ("negative", "positive")
    source = imdb_source(real_imdb_dir)
    raw = load_raw(source)
    options = SplitOptions.of(entry.split)
    assert options == SplitOptions()  # seed 42, 80/10/10, duplicates dropped
    assert raw.content_hash() == IMDB_CONTENT_SHA256
    assert raw.fingerprint(options) == IMDB_FINGERPRINT
    split = make_split(raw, options)
    assert {s: ids_sha256(split.ids[s])[:16] for s in SPLITS} == IMDB_SPLIT_IDS
    sample = SplitOptions.of(entry.split, limit=1000)
    result = prepare(Workspace(tmp_path / "ws"), [registry.load_spec(TINY)], source, sample, 64)
    cache = result.caches[TINY]
    assert cache.data_fingerprint == IMDB_FINGERPRINT + "-limit1000"
    assert cache.path.name == IMDB_SAMPLE_DIR
    assert _arrays(cache) == IMDB_SAMPLE_ARRAYS
    assert cache.dataset == "imdb" and cache.label_names == ["negative", "positive"]


@pytest.mark.slow
def test_the_whole_imdb_tokenizes_as_before(real_imdb_dir: Path, tmp_path: Path) -> None:
    entry = load_dataset_entry(None)
    result = prepare(
        Workspace(tmp_path / "ws"),
        [registry.load_spec(TINY)],
        imdb_source(real_imdb_dir),
        SplitOptions.of(entry.split),
        128,
    )
    cache = result.caches[TINY]
    assert cache.data_fingerprint == IMDB_FINGERPRINT and cache.path.name == IMDB_FULL_DIR
    assert _arrays(cache) == IMDB_FULL_ARRAYS


def test_caches_made_before_dataset_entries_are_reused(
    workdir: Path, synthetic_imdb_dir: Path
) -> None:
    """A manifest without dataset, labels or split policy (the old form) holds IMDB."""
    ws = Workspace(workdir)
    spec = registry.load_spec(TINY)
    first = prepare(ws, [spec], imdb_source(synthetic_imdb_dir), SplitOptions(), 32)
    for manifest in ws.cache.glob("*/*/manifest.json"):
        data = json.loads(manifest.read_text())
        assert data["dataset"] == "imdb" and data["labels"] == ["negative", "positive"]
        for key in ("dataset", "labels", "split_policy"):
            data.pop(key)
        manifest.write_text(json.dumps(data))
    again = prepare(ws, [spec], imdb_source(synthetic_imdb_dir), SplitOptions(), 32)
    assert again.split_reused and again.caches[TINY].reused
    assert again.caches[TINY].path == first.caches[TINY].path
    found = find_tokenized_cache(ws, registry.build_tokenizer(spec), 32)
    assert found.path == first.caches[TINY].path
    assert found.dataset == "imdb" and found.label_names == ["negative", "positive"]


# --------------------------------------------------------------------------- other entries


def test_the_readme_example_prepares_three_classes(
    run_cli: Callable, tmp_path: Path, workdir: Path
) -> None:
    yaml_path = write_my_reviews(tmp_path, n=150)
    assert yaml_path.read_text() == MY_REVIEWS_YAML
    result = run_cli("prepare", "--models", TINY, "--dataset", str(yaml_path), "--max-length", "32")
    assert result.exit_code == 0, result.output
    for needle in ("my-reviews splits (new)", *THREE_LABELS, "120", "15"):
        assert needle in result.output, needle
    ws = Workspace(workdir)
    cache = find_tokenized_cache(
        ws, registry.build_tokenizer(registry.load_spec(TINY)), 32, dataset="my-reviews"
    )
    assert cache.label_names == list(THREE_LABELS) and cache.dataset == "my-reviews"
    assert cache.sizes() == {"train": 120, "val": 15, "test": 15}
    labels = np.concatenate([load_split(cache, s).labels for s in SPLITS])
    assert sorted(np.bincount(labels).tolist()) == [50, 50, 50]
    # IMDB's caches are not this data set's, and the other way round; prepared data named
    # by its fingerprint (`--data`) holds its own data set.
    tokenizer = registry.build_tokenizer(registry.load_spec(TINY))
    with pytest.raises(ImdbError, match="no tokenized imdb data"):
        find_tokenized_cache(ws, tokenizer, 32)
    named = cache.data_fingerprint
    assert find_tokenized_cache(ws, tokenizer, 32, fingerprint=named, dataset=None) == cache
    with pytest.raises(ImdbError, match=f"--data {named} holds the data set 'my-reviews'"):
        find_tokenized_cache(ws, tokenizer, 32, fingerprint=named)


def _entry(tmp_path: Path, text: str, name: str = "mine.yaml") -> DatasetEntry:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return load_dataset_entry(str(path))


def _three_class_yaml(source: str, *, extra: str = "", labels: str = "") -> str:
    return (
        f"name: three\nsource: {source}\ntext: review\nlabel: sentiment\n"
        f"labels: {labels or '[negative, neutral, positive]'}\n{extra}"
    )


def test_parquet_jsonl_and_one_csv_file_read_the_same_rows(tmp_path: Path) -> None:
    rows = three_class_reviews(30)
    texts = [t for t, _ in rows]
    expected = [THREE_LABELS.index(label) for _, label in rows]
    write_csv(tmp_path / "one.csv", rows)
    (tmp_path / "pq").mkdir()
    table = pa.table({"review": texts, "sentiment": [label for _, label in rows]})
    pq.write_table(table, tmp_path / "pq" / "data.parquet")
    (tmp_path / "jl").mkdir()
    with (tmp_path / "jl" / "a.jsonl").open("w", encoding="utf-8") as handle:
        for text, label in rows:
            handle.write(
                json.dumps({"review": text, "sentiment": THREE_LABELS.index(label)}) + "\n"
            )
    hashes = set()
    for source in ("one.csv", "pq", "jl"):
        raw = load_raw(DataSource.of(_entry(tmp_path, _three_class_yaml(source))))
        assert raw.texts == texts and raw.labels.tolist() == expected, source
        hashes.add(raw.content_hash())
    assert len(hashes) == 1


def test_numbered_labels_are_names_and_ids_are_positions(tmp_path: Path) -> None:
    table = pa.table({"review": ["a", "b", "c", "d"], "sentiment": [5, 1, 3, 1]})
    (tmp_path / "stars").mkdir()
    pq.write_table(table, tmp_path / "stars" / "all.parquet")
    stars = _entry(tmp_path, _three_class_yaml("stars", labels="[1, 3, 5]"))
    assert stars.labels == ("1", "3", "5") and stars.numbered_labels
    assert load_raw(DataSource.of(stars)).labels.tolist() == [2, 0, 1, 0]


def test_given_splits_are_kept(tmp_path: Path, workdir: Path) -> None:
    rows = three_class_reviews(90)
    folder = tmp_path / "given"
    write_csv(folder / "train.csv", rows[:60])
    write_csv(folder / "validation.csv", rows[60:75])
    write_csv(folder / "test.csv", [*rows[75:], rows[0]])  # a copy of a train review
    entry = _entry(tmp_path, _three_class_yaml("given", extra="split: given\n"))
    raw = load_raw(DataSource.of(entry))
    split = make_split(raw, SplitOptions.of(entry.split))
    assert {s: len(split.ids[s]) for s in SPLITS} == {"train": 60, "val": 15, "test": 15}
    assert split.duplicates_dropped == 1 and 90 not in split.ids["test"].tolist()
    resplit = replace(entry, split=replace(entry.split, given=False))
    assert raw.fingerprint(SplitOptions.of(entry.split)) != raw.fingerprint(
        SplitOptions.of(resplit.split)
    )
    result = prepare(
        Workspace(workdir),
        [registry.load_spec(TINY)],
        DataSource.of(entry),
        SplitOptions.of(entry.split),
        16,
    )
    assert result.split_manifest["sizes"] == {"train": 60, "val": 15, "test": 15}
    assert result.split_manifest["split_policy"] == "the source's own train/validation/test splits"


def test_aclimdb_layout_with_any_labels(tmp_path: Path) -> None:
    root = tmp_path / "acl" / "aclImdb"
    for split in ("train", "test"):
        for label in ("negative", "neu", "positive"):  # a label's name or its first three letters
            (root / split / label).mkdir(parents=True)
            (root / split / label / "0.txt").write_text(f"{split} {label}", encoding="utf-8")
        (root / split / "unsup").mkdir()  # no label's folder: skipped
    entry = _entry(tmp_path, _three_class_yaml("acl"))
    raw = load_raw(DataSource.of(entry))
    assert raw.texts == [
        f"{s} {x}" for s in ("train", "test") for x in ("negative", "neu", "positive")
    ]
    assert raw.labels.tolist() == [0, 1, 2, 0, 1, 2]


def test_other_data_sets_never_share_imdb_fingerprints(synthetic_imdb_dir: Path) -> None:
    imdb = load_dataset_entry(None)
    raw = load_raw(imdb_source(synthetic_imdb_dir))
    options = SplitOptions.of(imdb.split)
    renamed = load_raw(DataSource.of(replace(imdb, name="reviews2"), synthetic_imdb_dir))
    relabelled = load_raw(DataSource.of(replace(imdb, labels=("bad", "good")), synthetic_imdb_dir))
    other_split = SplitOptions(fractions=(0.7, 0.15, 0.15))
    prints = {
        raw.fingerprint(options),
        renamed.fingerprint(options),
        relabelled.fingerprint(options),
        raw.fingerprint(other_split),
    }
    assert len(prints) == 4 and len(raw.fingerprint(options)) == 12


# --------------------------------------------------------------------------- bad entries


def test_bad_entries_are_one_red_line_naming_file_and_key(
    run_cli: Callable, tmp_path: Path, workdir: Path
) -> None:
    rows = three_class_reviews(30)
    write_csv(tmp_path / "ok" / "all.csv", rows)
    write_csv(tmp_path / "typo" / "all.csv", [*rows, ("Opinion x: fine.", "neutrl")])
    write_csv(tmp_path / "one_class" / "all.csv", [(t, "neutral") for t, _ in rows])
    write_csv(tmp_path / "noheader" / "all.csv", rows, columns=("text", "label"))
    write_csv(tmp_path / "tiny" / "all.csv", rows[:12])
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "notes.txt").write_text("no data here")
    (tmp_path / "reviews.xlsx").write_bytes(b"PK")
    ok = "source: ok\ntext: review\nlabel: sentiment\nlabels: [negative, neutral, positive]\n"
    cases: dict[str, tuple[str, tuple[str, ...]]] = {
        "missing text column": (
            "source: noheader\ntext: review\nlabel: label\nlabels: [negative, neutral, positive]\n",
            ("key 'text'", "'review'", "columns: text, label"),
        ),
        "missing label column": (
            ok.replace("label: sentiment", "label: stars"),
            ("key 'label'", "'stars'", "columns: review, sentiment"),
        ),
        "a label not declared": (
            ok.replace("source: ok", "source: typo"),
            ("key 'label'", "'neutrl'", "negative, neutral, positive"),
        ),
        "one class in the data": (
            ok.replace("source: ok", "source: one_class"),
            ("key 'label'", "'neutral'", "at least two classes"),
        ),
        "one declared class": (
            ok.replace("[negative, neutral, positive]", "[neutral]"),
            ("key 'labels'", "at least two"),
        ),
        "labels read as booleans": (
            ok.replace("[negative, neutral, positive]", "[no, yes]"),
            ("key 'labels'", "False"),
        ),
        "an empty split": (
            ok.replace("source: ok", "source: tiny")
            + "split: {seed: 1, fractions: [0.96, 0.02, 0.02]}\n",
            ("key 'split'", "empty"),
        ),
        "fractions not adding up": (
            ok + "split: {fractions: [0.8, 0.1, 0.2]}\n",
            ("key 'split'", "add up to 1"),
        ),
        "unknown source layout": (
            ok.replace("source: ok", "source: odd"),
            ("key 'source'", "unknown source layout"),
        ),
        "unknown file type": (
            ok.replace("source: ok", "source: reviews.xlsx"),
            ("key 'source'", "unknown source layout"),
        ),
        "missing source": (
            ok.replace("source: ok", "source: nowhere"),
            ("key 'source'", "no such file or folder"),
        ),
        "unknown key": (ok + "colour: blue\n", ("unknown key(s) colour",)),
        "wrong type": (
            ok.replace("text: review", "text: [review]"),
            ("key 'text'", "non-empty text"),
        ),
        "given from one file": (
            ok.replace("source: ok", "source: ok/all.csv") + "split: given\n",
            ("key 'split'", "one file"),
        ),
        "bad name": (ok, ("key 'name'", "'my reviews'")),
    }
    for name, (body, needles) in cases.items():
        label = "my reviews" if name == "bad name" else "mine"
        path = tmp_path / f"{name.replace(' ', '_')}.yaml"
        path.write_text(f"name: {label}\n{body}", encoding="utf-8")
        result = run_cli("prepare", "--models", TINY, "--dataset", str(path), "--max-length", "16")
        try:
            assert_one_red_line(result, str(path), *needles)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from exc
    assert not list(workdir.glob("cache/*/*/manifest.json"))


def test_dataset_names_and_paths(run_cli: Callable, tmp_path: Path) -> None:
    path = tmp_path / "clash.yaml"
    path.write_text(MY_REVIEWS_YAML.replace("name: my-reviews", "name: imdb"), encoding="utf-8")
    assert_one_red_line(
        run_cli("prepare", "--models", TINY, "--dataset", str(path)), "key 'name'", "imdb.yaml"
    )
    assert_one_red_line(
        run_cli("prepare", "--models", TINY, "--dataset", "stanfordnlp/imdb"),
        "--dataset",
        "source: stanfordnlp/imdb",
    )
    assert_one_red_line(
        run_cli("prepare", "--models", TINY, "--dataset", str(tmp_path / "gone.yaml")),
        "--dataset",
        "gone.yaml",
    )


def test_every_shipped_dataset_entry_loads() -> None:
    from imdb_cli.data.entry import configs_dir, known_datasets

    assert "imdb" in known_datasets()
    for name in known_datasets():
        entry = read_dataset_entry(configs_dir() / f"{name}.yaml")
        assert entry.name == name and entry.num_classes >= 2
