"""`imdb predict`: new reviews scored exactly as the run was trained, in input order, from
--text, files of every kind and standard input; bad input is one red line and no output."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from analysis_support import MODELS
from cli_support import assert_one_red_line
from predict_support import imdb, jsonl_rows, probs_of, split_texts

from imdb_cli.handoff import predict, review_files
from imdb_cli.handoff.review_files import from_texts
from imdb_cli.runs.select import resolve_run
from imdb_cli.workspace import Workspace

pytestmark = pytest.mark.usefixtures("single_thread")  # conftest.py

LABELS = ["negative", "positive"]


def scores(workspace: Workspace, target: str, texts: list[str]) -> np.ndarray:
    predictor = predict.load_predictor(workspace, target, device="cpu")
    chunks = predict.predict_reviews(predictor, from_texts(texts))
    return np.concatenate([chunk.probs for chunk in chunks])


# --------------------------------------------------------------------------- equality


@pytest.mark.parametrize("model", MODELS)
def test_predict_on_the_test_texts_gives_the_probabilities_the_ledger_holds(
    trained_root: Path,
    model: str,
) -> None:
    workspace = Workspace(trained_root)
    ledger = resolve_run(workspace, model).ledger
    assert ledger.test is not None
    review_ids, texts = split_texts(trained_root, model)
    assert review_ids == ledger.test.review_ids
    got = scores(workspace, model, texts)
    expected = ledger.test.prob_matrix()
    assert np.abs(got - expected).max() < 1e-5
    assert (got.argmax(axis=1) == ledger.test.predicted()).all()


def test_a_head_tail_run_cuts_new_reviews_as_it_was_trained(head_tail_root: Path) -> None:
    workspace = Workspace(head_tail_root)
    ledger = resolve_run(workspace, "tiny-bert").ledger
    assert ledger.config.truncation == "head+tail" and ledger.test is not None
    _, texts = split_texts(head_tail_root, "tiny-bert")
    got = scores(workspace, "tiny-bert", texts)
    assert np.abs(got - ledger.test.prob_matrix()).max() < 1e-5


def test_order_of_input_and_chunking_change_no_score(
    trained_root: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    workspace = Workspace(trained_root)
    _, texts = split_texts(trained_root, "tiny-bert")
    whole = scores(workspace, "tiny-bert", texts)
    monkeypatch.setattr(review_files, "CHUNK", 7)  # chunks sorted by length on their own
    reversed_scores = scores(workspace, "tiny-bert", texts[::-1])
    assert np.abs(reversed_scores[::-1] - whole).max() < 1e-5


# --------------------------------------------------------------------------- the command


def test_two_texts_give_a_table_with_the_runs_label_names(trained_root: Path) -> None:
    result = imdb(
        trained_root,
        "predict",
        "tiny-bert",
        "--text",
        "A slow start, but a wonderful last hour.",
        "--text",
        "Two hours I will never get back.",
    )
    assert result.exit_code == 0, result.output
    header = next(line for line in result.stdout.splitlines() if "label" in line)
    for column in ("row", "label", "prob_negative", "prob_positive", "review"):
        assert column in header
    body = result.stdout.split(header, 1)[1]
    assert "A slow start" in body and "Two hours" in body
    assert body.count("negative") + body.count("positive") == 2


def test_a_table_written_to_a_file_fits_80_columns(
    trained_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    review = "A slow start, but a wonderful last hour, and the music stays with you. " * 3
    scored = tmp_path / "scored.txt"
    args = ["--text", review, "--text", "Two hours I will never get back."]
    result = imdb(
        trained_root, "predict", "tiny-bert", *args, "--format", "table", "-o", str(scored)
    )
    assert result.exit_code == 0, result.output
    lines = scored.read_text(encoding="utf-8").splitlines()
    assert any("prob_positive" in line for line in lines)
    assert max(len(line) for line in lines) <= 80, "\n".join(lines)


def test_file_formats_give_the_same_scores_in_input_order(
    trained_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(review_files, "CHUNK", 7)
    _, texts = split_texts(trained_root, "tiny-bert")
    texts = texts[:20]
    expected = scores(Workspace(trained_root), "tiny-bert", texts)
    ids = [f"r{i:02d}" for i in range(len(texts))]

    with open(tmp_path / "in.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "review"])
        writer.writerows(zip(ids, texts, strict=True))
    (tmp_path / "in.tsv").write_text(
        "review\n" + "".join(t.replace("\t", " ") + "\n" for t in texts), encoding="utf-8"
    )
    (tmp_path / "in.jsonl").write_text(
        "".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8"
    )
    (tmp_path / "in.txt").write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    pq.write_table(pa.table({"id": list(range(100, 120)), "text": texts}), tmp_path / "in.parquet")

    cases = [
        ("in.csv", ["--column", "review"], "id", ids),
        ("in.tsv", ["--column", "review"], "row", list(range(1, 21))),
        ("in.jsonl", [], "row", list(range(1, 21))),
        ("in.txt", [], "row", list(range(1, 21))),
        ("in.parquet", [], "id", list(range(100, 120))),
    ]
    for name, extra, key, keys in cases:
        out = tmp_path / f"{name}.out.jsonl"
        result = imdb(
            trained_root,
            "predict",
            "tiny-bert",
            "--file",
            str(tmp_path / name),
            *extra,
            "-o",
            str(out),
        )
        assert result.exit_code == 0, (name, result.output)
        rows = jsonl_rows(out.read_text(encoding="utf-8"))
        assert [row[key] for row in rows] == keys, name
        assert np.abs(probs_of(rows, LABELS) - expected).max() < 1e-6, name
        assert [row["label"] for row in rows] == [LABELS[i] for i in expected.argmax(axis=1)]


def test_csv_tsv_and_json_outputs_and_standard_input(trained_root: Path, tmp_path: Path) -> None:
    texts = ["great fun, superb acting", "dull and tedious", "a film"]
    expected = scores(Workspace(trained_root), "tiny-bert", texts)
    stdin = "".join(t + "\n" for t in texts)

    result = imdb(
        trained_root, "predict", "tiny-bert", "--file", "-", "--format", "csv", stdin=stdin
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(result.stdout.splitlines()))
    assert list(rows[0]) == ["row", "label", "prob_negative", "prob_positive"]
    got = np.array([[float(r["prob_negative"]), float(r["prob_positive"])] for r in rows])
    assert np.abs(got - expected).max() < 1e-6

    out = tmp_path / "scored.json"  # the format follows the suffix
    result = imdb(trained_root, "predict", "tiny-bert", "--file", "-", "-o", str(out), stdin=stdin)
    assert result.exit_code == 0, result.output
    records = json.loads(out.read_text(encoding="utf-8"))
    assert [r["row"] for r in records] == [1, 2, 3]
    assert np.abs(probs_of(records, LABELS) - expected).max() < 1e-6

    out = tmp_path / "scored.tsv"  # tab-separated, not a drawn table
    result = imdb(trained_root, "predict", "tiny-bert", "--file", "-", "-o", str(out), stdin=stdin)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.read_text(encoding="utf-8").splitlines(), delimiter="\t"))
    assert [r["row"] for r in rows] == ["1", "2", "3"]
    got = np.array([[float(r["prob_negative"]), float(r["prob_positive"])] for r in rows])
    assert np.abs(got - expected).max() < 1e-6


def test_embeddings_are_saved_in_output_order(trained_root: Path, tmp_path: Path) -> None:
    _, texts = split_texts(trained_root, "tiny-modernbert")
    texts = texts[:12]
    vectors = {}
    for name, given in (("forward", texts), ("backward", texts[::-1])):
        (tmp_path / f"{name}.txt").write_text("\n".join(given) + "\n", encoding="utf-8")
        result = imdb(
            trained_root,
            "predict",
            "tiny-modernbert",
            "--file",
            str(tmp_path / f"{name}.txt"),
            "--format",
            "jsonl",
            "--embeddings",
            str(tmp_path / f"{name}.npy"),
        )
        assert result.exit_code == 0, result.output
        vectors[name] = np.load(tmp_path / f"{name}.npy")
    assert vectors["forward"].shape == (12, 64) and vectors["forward"].dtype == np.float32
    assert np.abs(vectors["forward"] - vectors["backward"][::-1]).max() < 1e-5
    assert np.abs(vectors["forward"][0] - vectors["forward"][1]).max() > 1e-3


def test_skip_empty_passes_over_empty_reviews_and_counts_them(
    trained_root: Path,
    tmp_path: Path,
) -> None:
    (tmp_path / "in.txt").write_text("good film\n\n   \nbad film\n", encoding="utf-8")
    result = imdb(
        trained_root,
        "predict",
        "tiny-bert",
        "--file",
        str(tmp_path / "in.txt"),
        "--format",
        "jsonl",
        "--skip-empty",
    )
    assert result.exit_code == 0, result.output
    assert [row["row"] for row in jsonl_rows(result.stdout)] == [1, 4]
    assert "skipped 2 empty review(s)" in result.stderr


def test_an_interrupted_run_leaves_no_output_under_the_name(
    trained_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(review_files, "CHUNK", 5)
    real_classify = predict.classify
    calls = []

    def interrupted(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_classify(*args, **kwargs)

    monkeypatch.setattr(predict, "classify", interrupted)
    (tmp_path / "in.txt").write_text("".join(f"review {i} was fine\n" for i in range(20)))
    out = tmp_path / "out" / "scored.jsonl"
    out.parent.mkdir()
    result = imdb(
        trained_root,
        "predict",
        "tiny-bert",
        "--file",
        str(tmp_path / "in.txt"),
        "-o",
        str(out),
        "--embeddings",
        str(out.parent / "vectors.npy"),
    )
    assert result.exit_code == 130
    assert_one_red_line(result, "interrupted")
    assert list(out.parent.iterdir()) == []


# --------------------------------------------------------------------------- bad input


def _bad_inputs(folder: Path) -> dict[str, tuple[list[str], list[str]]]:
    """Name -> (arguments, fragments of the one red line)."""
    (folder / "empty.txt").write_bytes(b"")
    (folder / "latin1.txt").write_bytes(b"good\nfine\ncaf\xe9 au lait\n")
    (folder / "blank.txt").write_text("good film\n   \nbad film\n", encoding="utf-8")
    (folder / "cols.csv").write_text("id,body\n1,a fine film\n", encoding="utf-8")
    (folder / "latin1.csv").write_bytes(b"text\ngood\nbad \xff\n")
    (folder / "quote.csv").write_text('text\n"a fine" film\n', encoding="utf-8")
    (folder / "short.csv").write_text("id,text\n1,good\n2\n", encoding="utf-8")
    (folder / "blank.csv").write_text('text\ngood\n"  "\n', encoding="utf-8")
    (folder / "bad.jsonl").write_text('{"text": "good"}\n{text: bad}\n', encoding="utf-8")
    (folder / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    pq.write_table(pa.table({"stars": [1, 2]}), folder / "nocol.parquet")
    pq.write_table(pa.table({"text": ["good", None]}), folder / "null.parquet")
    (folder / "notes.md").write_text("hello", encoding="utf-8")
    f = str(folder)
    return {
        "missing file": (["--file", f"{f}/nope.csv"], ["--file", "nope.csv", "no such file"]),
        "empty file": (["--file", f"{f}/empty.txt"], ["empty.txt", "empty"]),
        "unknown suffix": (["--file", f"{f}/notes.md"], ["notes.md", ".csv"]),
        "not utf-8 txt": (["--file", f"{f}/latin1.txt"], ["latin1.txt line 3", "not UTF-8"]),
        "not utf-8 csv": (["--file", f"{f}/latin1.csv"], ["latin1.csv line 3", "not UTF-8"]),
        "empty review": (
            ["--file", f"{f}/blank.txt"],
            ["blank.txt line 2", "empty review", "--skip-empty"],
        ),
        "blank csv review": (
            ["--file", f"{f}/blank.csv"],
            ["blank.csv line 3 (row 2)", "'text'", "empty review"],
        ),
        "missing column": (
            ["--file", f"{f}/cols.csv", "--column", "review"],
            ["cols.csv", "no column 'review'", "'id', 'body'"],
        ),
        "bad csv quoting": (["--file", f"{f}/quote.csv"], ["quote.csv line 2", "not readable CSV"]),
        "short csv row": (["--file", f"{f}/short.csv"], ["short.csv line 3", "1 fields"]),
        "bad json line": (["--file", f"{f}/bad.jsonl"], ["bad.jsonl line 2", "not JSON"]),
        "broken parquet": (
            ["--file", f"{f}/broken.parquet"],
            ["broken.parquet", "not a readable parquet file"],
        ),
        "parquet column": (["--file", f"{f}/nocol.parquet"], ["no column 'text'", "'stars'"]),
        "null review": (["--file", f"{f}/null.parquet"], ["null.parquet row 2", "null"]),
        "empty --text": (["--text", "good", "--text", " "], ["--text number 2", "empty review"]),
        "no folder for -o": (
            ["--text", "good", "-o", f"{f}/missing/scored.csv"],
            ["--output", "missing", "does not exist"],
        ),
        "text and file": (
            ["--text", "good", "--file", f"{f}/blank.txt"],
            ["--text", "--file", "not both"],
        ),
        "neither text nor file": ([], ["no reviews to score", "--text", "--file"]),
        "bad format": (["--text", "good", "--format", "xml"], ["--format", "jsonl"]),
    }


def test_each_bad_input_is_one_red_line_and_writes_nothing(
    trained_root: Path,
    tmp_path: Path,
) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    for name, (args, fragments) in _bad_inputs(inputs).items():
        output = [] if "-o" in args else ["-o", str(out / "s.jsonl")]
        result = imdb(trained_root, "predict", "tiny-bert", *args, *output)
        try:
            assert_one_red_line(result, *fragments)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {result.output}") from exc
        assert result.stdout == "", name
        assert list(out.iterdir()) == [], name


@pytest.mark.parametrize(
    ("target", "fragments"),
    [
        ("no-such-model", ["no-such-model", "neither a run folder nor a known model"]),
        ("tiny-bert/no-such-run", ["no run 'tiny-bert/no-such-run'"]),
        ("minilm", ["model 'minilm' has no completed run", "train minilm`"]),
    ],
)
def test_an_unknown_model_or_run_is_one_red_line(
    trained_root: Path,
    target: str,
    fragments: list[str],
) -> None:
    assert_one_red_line(imdb(trained_root, "predict", target, "--text", "good"), *fragments)


def test_a_folder_that_is_neither_a_run_nor_an_export_is_refused(
    trained_root: Path, tmp_path: Path
) -> None:
    result = imdb(trained_root, "predict", str(tmp_path), "--text", "good")
    assert_one_red_line(result, str(tmp_path), "imdb export")
