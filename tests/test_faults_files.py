"""Fault injection on the files the user hands `imdb predict` and `imdb prepare`, and the
outputs they name: an output onto an input, devices, FIFOs and links, damaged or odd data
files. Each case asserts the exit code, one red line with no traceback (or the documented
result), and that nothing the user had was lost or changed."""

from __future__ import annotations

import os
import random
import shutil
import stat
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from cli_support import assert_one_red_line
from predict_support import imdb, jsonl_rows

from imdb_cli.config import read_yaml
from imdb_cli.errors import ImdbError
from imdb_cli.handoff import predict_output
from imdb_cli.runs.select import resolve_run
from imdb_cli.workspace import Workspace

pytestmark = pytest.mark.usefixtures("single_thread")  # conftest.py
REVIEWS = "A fine film.\nA dull film.\nNot bad at all.\n"


@pytest.fixture
def reviews(tmp_path: Path) -> Path:
    path = tmp_path / "reviews.txt"
    path.write_text(REVIEWS)
    return path


# --------------------------------------------------------------------------- outputs


def _alias(reviews: Path, how: str) -> Path:
    if how == "same path":
        return reviews
    alias = reviews.with_name(f"alias-{how.replace(' ', '-')}.jsonl")
    if how == "symbolic link":
        alias.symlink_to(reviews)
    else:
        os.link(reviews, alias)
    return alias


@pytest.mark.parametrize("how", ["same path", "symbolic link", "hard link"])
@pytest.mark.parametrize("flag", ["-o", "--embeddings"])
def test_an_output_onto_the_reviews_being_read_is_refused(
    trained_root: Path, reviews: Path, how: str, flag: str
) -> None:
    target = _alias(reviews, how)
    result = imdb(trained_root, "predict", "tiny-bert", "--file", str(reviews), flag, str(target))
    assert_one_red_line(result, str(target), "being read", "replace the reviews")
    assert reviews.read_text() == REVIEWS
    assert sorted(p.name for p in reviews.parent.iterdir()) == sorted({reviews.name, target.name})


def test_the_file_standard_input_reads_is_not_an_output(
    reviews: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`imdb predict --file - -o reviews.txt < reviews.txt`."""
    with reviews.open() as redirected:
        monkeypatch.setattr(sys, "stdin", redirected)
        with pytest.raises(ImdbError, match="standard input reads the reviews from"):
            predict_output.output_targets(reviews, None, "-")
    assert reviews.read_text() == REVIEWS


def test_scores_and_vectors_into_one_file_is_refused(
    trained_root: Path, reviews: Path, tmp_path: Path
) -> None:
    both = tmp_path / "both.npy"
    result = imdb(
        trained_root, "predict", "tiny-bert", "--file", str(reviews), "-o", str(both),
        "--embeddings", str(both),
    )  # fmt: skip
    assert_one_red_line(result, "--output", "--embeddings", "are the same file")
    assert not both.exists()


def test_dev_null_is_written_in_place_and_stays_a_device(trained_root: Path, reviews: Path) -> None:
    before = os.stat("/dev/null")
    result = imdb(trained_root, "predict", "tiny-bert", "--file", str(reviews), "-o", "/dev/null")
    assert result.exit_code == 0, result.output
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev
    assert not list(Path("/dev").glob(".tmp-null-*"))


def test_a_fifo_output_is_written_as_a_stream(
    trained_root: Path, reviews: Path, tmp_path: Path
) -> None:
    fifo = tmp_path / "scores.fifo"
    os.mkfifo(fifo)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    result = imdb(
        trained_root, "predict", "tiny-bert", "--file", str(reviews), "-o", str(fifo),
        "--format", "jsonl",
    )  # fmt: skip
    reader.join(timeout=60)
    assert result.exit_code == 0, result.output
    assert [row["row"] for row in jsonl_rows(received[0])] == [1, 2, 3]
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_an_output_link_writes_what_it_points_at_and_stays_a_link(
    trained_root: Path, reviews: Path, tmp_path: Path
) -> None:
    scores = tmp_path / "scores.jsonl"
    scores.write_text("old scores\n")
    link = tmp_path / "latest.jsonl"
    link.symlink_to(scores.name)
    result = imdb(trained_root, "predict", "tiny-bert", "--file", str(reviews), "-o", str(link))
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and os.readlink(link) == scores.name
    assert len(jsonl_rows(scores.read_text())) == 3


@pytest.mark.parametrize(
    ("flag", "target", "says"),
    [
        ("-o", "dangling", "which does not exist"),
        ("--embeddings", "/dev/null", "is a device or FIFO"),
        ("-o", "folder", "is a folder"),
    ],
)
def test_outputs_that_cannot_be_written_safely_are_refused(
    trained_root: Path, reviews: Path, tmp_path: Path, flag: str, target: str, says: str
) -> None:
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere" / "x.jsonl")
    (tmp_path / "folder").mkdir()
    path = target if target.startswith("/") else str(tmp_path / target)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = imdb(trained_root, "predict", "tiny-bert", "--file", str(reviews), flag, path)
    assert_one_red_line(result, path, says)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_what_a_killed_predict_left_is_removed_next_time(
    trained_root: Path, reviews: Path, tmp_path: Path
) -> None:
    leftover = tmp_path / ".tmp-scores.jsonl-999999999-0123abcd"
    leftover.write_text('{"row": 1')
    result = imdb(
        trained_root, "predict", "tiny-bert", "--file", str(reviews), "-o",
        str(tmp_path / "scores.jsonl"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert not leftover.exists() and f"removed {leftover}" in result.output


# --------------------------------------------------------------------------- YAML


def _bomb(levels: int = 9, width: int = 9) -> str:
    """A 'billion laughs': each level an alias list of the one before (9**9 values)."""
    lines = ["a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


BOMBS = {
    "model YAML": ("name: bomb\ntokenizer: x\n" + _bomb() + "training: {epochs: *a8}\n"),
    "dataset YAML": ("name: bomb\nsource: x.csv\ntext: t\nlabel: l\n" + _bomb() + "labels: *a8\n"),
    "self-reference": "name: &x [*x]\ntokenizer: x\n",
}


@pytest.mark.parametrize("case", list(BOMBS))
def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path: Path, case: str) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMBS[case])
    started = time.perf_counter()
    with pytest.raises(ImdbError, match="refused") as caught:
        read_yaml(path)
    assert time.perf_counter() - started < 2
    assert str(path) in caught.value.message and len(caught.value.message) < 300


@pytest.mark.parametrize(
    ("command", "case"), [("train", "model YAML"), ("prepare", "dataset YAML")]
)
def test_a_yaml_bomb_given_to_a_command_is_one_short_line(
    run_cli, tmp_path: Path, workdir: Path, command: str, case: str
) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMBS[case])
    args = ["train", str(path)] if command == "train" else ["prepare", "--dataset", str(path)]
    result = run_cli(*args)
    assert_one_red_line(result, str(path), "aliases expand to more than")
    assert len(result.output) < 500 and not workdir.exists()


def test_a_bomb_in_a_runs_config_yaml_is_named_by_compare(
    trained_root: Path, tmp_path: Path
) -> None:
    space = Workspace(shutil.copytree(trained_root, tmp_path / "ws"))
    run = resolve_run(space, "tiny-bert")
    (run.path / "config.yaml").write_text(_bomb() + "pretrained: *a8\n")
    result = imdb(space.root, "compare", "tiny-bert")
    assert_one_red_line(result, str(run.path / "config.yaml"), "refused")


def test_bounded_yaml_reads_every_shipped_entry_as_pyyaml_does(tmp_path: Path) -> None:
    """The bound changes nothing for an ordinary document (anchors and aliases included)."""
    from imdb_cli import registry
    from imdb_cli.data import entry

    files = [*registry.configs_dir().glob("*.yaml"), *entry.configs_dir().glob("*.yaml")]
    assert len(files) > 5
    for path in files:
        assert read_yaml(path) == yaml.safe_load(path.read_text()), path
    sample = "base: &b {lr: 0.1, betas: [0.9, 0.99]}\nrun: {<<: *b, epochs: 2}\nagain: *b\n"
    (tmp_path / "anchors.yaml").write_text(sample)
    assert read_yaml(tmp_path / "anchors.yaml") == yaml.safe_load(sample)


def test_a_long_value_in_a_yaml_is_cut_in_the_message(run_cli, tmp_path: Path) -> None:
    path = tmp_path / "long.yaml"
    path.write_text(
        "name: long\ntokenizer: x\narchitecture: {type: bert, hidden_size: '" + "9" * 5000 + "'}\n"
    )
    result = run_cli("train", str(path))
    assert_one_red_line(result, str(path), "architecture.hidden_size", "...")
    assert len(result.output) < 500


# --------------------------------------------------------------------------- data files


def _dataset(folder: Path, csv_text: str, text: str = "review", label: str = "sentiment") -> Path:
    (folder / "data.csv").write_text(csv_text)
    path = folder / "mine.yaml"
    path.write_text(
        f"name: mine\nsource: data.csv\ntext: {text}\nlabel: {label}\n"
        "labels: [negative, positive]\n"
    )
    return path


def test_a_data_file_with_two_text_columns_is_refused(
    run_cli, tmp_path: Path, workdir: Path
) -> None:
    rows = "".join(f"film {i},{'positive' if i % 2 else 'negative'},x\n" for i in range(20))
    path = _dataset(tmp_path, "review,sentiment,review\n" + rows)
    result = run_cli("prepare", "--models", "tiny-bert", "--dataset", str(path))
    assert_one_red_line(result, str(path), "key 'text'", "2 columns named 'review'")
    assert not list(workdir.rglob("manifest.json"))  # nothing prepared


def test_text_and_label_naming_one_column_is_refused(run_cli, tmp_path: Path) -> None:
    path = _dataset(tmp_path, "review,sentiment\nfine,positive\n", label="review")
    result = run_cli("prepare", "--models", "tiny-bert", "--dataset", str(path))
    assert_one_red_line(result, str(path), "'text' and 'label' both name column 'review'")


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_reviews_with_two_columns_named_as_the_review_are_refused(
    trained_root: Path, tmp_path: Path, kind: str
) -> None:
    path = tmp_path / f"two.{kind}"
    if kind == "csv":
        path.write_text("text,id,text\nfine,1,dull\n")
    else:
        table = pa.Table.from_arrays([pa.array(["fine"]), pa.array(["dull"])], ["text", "text"])
        pq.write_table(table, path)
    before = path.read_bytes()
    result = imdb(trained_root, "predict", "tiny-bert", "--file", str(path))
    assert_one_red_line(result, str(path), "2 columns are named 'text'")
    assert path.read_bytes() == before


def test_empty_texts_in_a_data_set_are_named(run_cli, tmp_path: Path, workdir: Path) -> None:
    rows = [f"film {i} was {'good' if i % 2 else 'bad'},{'positive' if i % 2 else 'negative'}"
            for i in range(20)]  # fmt: skip
    rows[3], rows[11] = ",positive", '"   ",negative'
    path = _dataset(tmp_path, "review,sentiment\n" + "\n".join(rows) + "\n")
    before = (tmp_path / "data.csv").read_bytes()
    result = run_cli("prepare", "--models", "tiny-bert", "--dataset", str(path))
    assert_one_red_line(result, str(path), "key 'text'", "2 empty text(s) (row 4, 12")
    assert (tmp_path / "data.csv").read_bytes() == before
    assert not list(workdir.rglob("manifest.json"))


def test_an_empty_review_file_in_an_aclimdb_folder_is_named(run_cli, tmp_path: Path) -> None:
    from data_support import synthetic_reviews, write_aclimdb

    reviews = synthetic_reviews(40)
    folder = write_aclimdb(tmp_path / "imdb", reviews[:20], reviews[20:])
    empty = next((folder / "aclImdb" / "train" / "pos").glob("*.txt"))
    empty.write_text("  \n")
    result = run_cli("prepare", "--models", "tiny-bert", "--data-dir", str(folder))
    assert_one_red_line(result, str(empty), "an empty review")


# --------------------------------------------------------------------------- review files


@pytest.mark.parametrize("ending", ["\r", "\r\n"])
@pytest.mark.parametrize("kind", ["txt", "csv", "stdin"])
def test_carriage_return_line_ends_separate_reviews(
    trained_root: Path, tmp_path: Path, ending: str, kind: str
) -> None:
    texts = ["A fine film.", "A dull film.", "Not bad at all."]
    plain = tmp_path / "plain.txt"
    plain.write_text("\n".join(texts) + "\n")
    expected = imdb(trained_root, "predict", "tiny-bert", "--file", str(plain), "--format", "jsonl")
    body = ending.join(["text", *texts] if kind == "csv" else texts) + ending
    path = tmp_path / f"reviews.{'csv' if kind == 'csv' else 'txt'}"
    path.write_bytes(body.encode())
    if kind == "stdin":
        args, stdin = ["--file", "-"], body
    else:
        args, stdin = ["--file", str(path)], None
    result = imdb(trained_root, "predict", "tiny-bert", *args, "--format", "jsonl", stdin=stdin)
    assert result.exit_code == 0, result.output
    assert jsonl_rows(result.stdout) == jsonl_rows(expected.stdout)  # three reviews, same scores
    assert path.read_bytes() == body.encode()


def test_a_folder_given_as_file_is_named(trained_root: Path, tmp_path: Path) -> None:
    folder = tmp_path / "reviews.txt"
    folder.mkdir()
    result = imdb(trained_root, "predict", "tiny-bert", "--file", str(folder))
    assert_one_red_line(result, str(folder), "is a folder")


@pytest.mark.parametrize("name", ["reviews.fifo.txt", "from-a-shell"])
def test_a_fifo_given_as_file_is_read_as_a_stream(
    trained_root: Path, tmp_path: Path, name: str
) -> None:
    fifo = tmp_path / name
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text(REVIEWS))
    writer.start()
    result = imdb(trained_root, "predict", "tiny-bert", "--file", str(fifo), "--format", "jsonl")
    writer.join(timeout=60)
    assert result.exit_code == 0, result.output
    assert [row["row"] for row in jsonl_rows(result.stdout)] == [1, 2, 3]
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_a_fifo_named_as_parquet_is_refused_without_blocking(
    trained_root: Path, tmp_path: Path
) -> None:
    fifo = tmp_path / "reviews.parquet"
    os.mkfifo(fifo)
    result = imdb(trained_root, "predict", "tiny-bert", "--file", str(fifo))
    assert_one_red_line(result, str(fifo), "read by seeking")


# --------------------------------------------------------------------------- a huge review


def _review(chars: int, seed: int) -> str:
    rng = random.Random(seed)
    words = "the film was good bad awful superb, plot acting! director's (1999) café 😀 It's"
    vocabulary = [*words.split(" "), "", "\t", "overrated?!"]
    parts, total = [], 0
    while total < chars:
        word = rng.choice(vocabulary)
        parts.append(word)
        total += len(word) + 1
    return " ".join(parts)


def _byte_level_tokenizer() -> Any:
    """A small byte-level BPE tokenizer (RoBERTa's and ModernBERT's kind), trained here."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    backend.train_from_iterator([_review(3000, seed) for seed in range(20)], trainer)
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 1)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )


@pytest.mark.parametrize("kind", ["wordpiece", "byte-level"])
@pytest.mark.parametrize("truncation", ["head", "tail", "head+tail"])
def test_a_review_too_long_to_tokenize_whole_gets_the_tokens_of_the_whole(
    kind: str, truncation: str
) -> None:
    """The ends-only encoding of long reviews gives the very rows a full tokenization gives
    (checked against the tokenizer itself on reviews it can still take whole)."""
    from imdb_cli import registry
    from imdb_cli.data.encoding import LONG_REVIEW_CHARS, Encoder, Tokenization

    tokenizer = (
        registry.build_tokenizer(registry.load_spec("tiny-bert"))
        if kind == "wordpiece"
        else _byte_level_tokenizer()
    )
    texts = [
        _review(LONG_REVIEW_CHARS + 20_000, 1),
        "   " + _review(2 * LONG_REVIEW_CHARS, 2) + "  \t ",
        "x" * (LONG_REVIEW_CHARS + 1),  # no space to cut at: tokenized whole
        _review(400, 3),
    ]
    for max_length in (48, 512):
        windowed = Encoder(tokenizer, Tokenization(max_length, truncation))
        whole = Encoder(tokenizer, Tokenization(max_length, truncation))
        whole.windows = False
        got, expected = windowed.encode(texts), whole.encode(texts)
        assert windowed.windows is True
        assert (got[0] == expected[0]).all() and (got[1] == expected[1]).all()


def test_a_10_mb_review_is_scored_from_what_the_model_can_use(
    head_tail_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the ends of the review are tokenized (a whole 10 MB review took 1.8 GB)."""
    from imdb_cli.data.encoding import Encoder

    tokenized: list[int] = []
    for name in ("_bare", "_full_head_rows"):
        real = getattr(Encoder, name)

        def spy(self: Encoder, texts: list[str], real: Any = real) -> Any:
            tokenized.extend(len(text) for text in texts)
            return real(self, texts)

        monkeypatch.setattr(Encoder, name, spy)
    huge = tmp_path / "huge.txt"
    huge.write_text(_review(10 << 20, 4) + "\nA short one.\n")
    result = imdb(head_tail_root, "predict", "tiny-bert", "--file", str(huge), "--format", "jsonl")
    assert result.exit_code == 0, result.output
    assert [row["row"] for row in jsonl_rows(result.stdout)] == [1, 2]
    assert max(tokenized) < 100_000
