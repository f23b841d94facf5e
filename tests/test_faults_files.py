"""Fault injection on the files the user hands `imdb predict` and `imdb prepare`, and the
outputs they name: an output onto an input, devices, FIFOs and links, damaged or odd data
files. Each case asserts the exit code, one red line with no traceback (or the documented
result), and that nothing the user had was lost or changed."""

from __future__ import annotations

import os
import stat
import sys
import threading
from pathlib import Path

import pytest
from cli_support import assert_one_red_line
from predict_support import imdb, jsonl_rows

from imdb_cli.errors import ImdbError
from imdb_cli.handoff import predict_output

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
