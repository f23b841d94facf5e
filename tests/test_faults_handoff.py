"""Fault injection on the hand-off surfaces: folders written by `imdb export` (and run folders)
crafted or damaged by someone else, and `export --out` aimed at what the user has. Each case
is one red line, a non-zero exit, no code run, and nothing the user had lost or changed."""

from __future__ import annotations

import io
import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_support import assert_one_red_line
from predict_support import imdb
from transformers import AutoConfig

from imdb_cli import guarded_loading
from imdb_cli.errors import ImdbError
from imdb_cli.ledger import TOKENIZER_FILES
from imdb_cli.runs import ENCODER_DIR, resolve_run
from imdb_cli.workspace import Workspace

pytestmark = pytest.mark.usefixtures("single_thread")  # conftest.py

# A config block that transformers has no model class of its own for, naming code in a Hub
# repo: transformers 5 then asks on standard input whether to run it.
REMOTE_CODE = {"AutoModel": "someone/evil--evil.EvilModel", "AutoConfig": "someone/evil--evil.C"}
PIPED = "y\nA fine film.\nA dull film.\n"


def _copy(folder: Path, tmp_path: Path, name: str = "export") -> Path:
    copy = tmp_path / name
    shutil.copytree(folder, copy)
    return copy


def _edit_json(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# --------------------------------------------------------------------------- code


def _nested_remote_code(document: dict[str, Any]) -> None:
    document["encoder"]["model_type"] = "speecht5_hifigan"
    document["encoder"]["auto_map"] = REMOTE_CODE


def _deep_in_tokenizer_config(document: dict[str, Any]) -> None:
    document.setdefault("added_tokens_decoder", {})["0"] = {"x": [{"auto_map": REMOTE_CODE}]}


CODE_REQUESTS = {
    "nested encoder config": ("config.json", _nested_remote_code, "'encoder.auto_map'"),
    "deep in the tokenizer's config": (
        "tokenizer_config.json",
        _deep_in_tokenizer_config,
        "'added_tokens_decoder.0.x.0.auto_map'",
    ),
    "custom pipelines": (
        "config.json",
        lambda d: d.update(custom_pipelines={"text-classification": {"impl": "evil.P"}}),
        "'custom_pipelines'",
    ),
}


@pytest.mark.parametrize("case", list(CODE_REQUESTS))
def test_an_export_asking_for_code_at_any_depth_is_refused_without_reading_stdin(
    hf_export_root: Path, trained_root: Path, tmp_path: Path, case: str
) -> None:
    name, change, says = CODE_REQUESTS[case]
    folder = _copy(hf_export_root, tmp_path)
    _edit_json(folder / name, change)
    before = _snapshot(folder)
    result = imdb(trained_root, "predict", str(folder), "--file", "-", stdin=PIPED)
    assert_one_red_line(result, str(folder), name, says, "refused")
    assert "Do you wish to run" not in result.output
    assert _snapshot(folder) == before


def test_the_top_level_auto_map_that_imdb_export_writes_is_not_followed(
    hf_export_root: Path, trained_root: Path, tmp_path: Path
) -> None:
    """The export's own auto_map stays (for transformers users); imdb reads the folder
    without its modeling file, which here would fail if it were run."""
    folder = _copy(hf_export_root, tmp_path)
    assert json.loads((folder / "config.json").read_text())["auto_map"]
    (folder / "modeling_imdb.py").write_text("raise SystemExit('the export code ran')\n")
    result = imdb(trained_root, "predict", str(folder), "--file", "-", stdin=PIPED)
    assert result.exit_code == 0, result.output
    assert result.stdout.count("\n") >= 3  # three reviews scored, the "y" line among them


def test_a_run_whose_encoder_config_nests_a_code_request_is_refused(
    trained_root: Path, tmp_path: Path
) -> None:
    space = Workspace(_copy(trained_root, tmp_path, "ws"))
    run_dir = resolve_run(space, "tiny-bert").path
    _edit_json(
        run_dir / ENCODER_DIR / "config.json",
        lambda d: d.update(text_config={"model_type": "bert", "auto_map": REMOTE_CODE}),
    )
    result = imdb(space.root, "predict", str(run_dir), "--file", "-", stdin=PIPED)
    assert_one_red_line(result, "config.json", "'text_config.auto_map'", "refused")


def test_transformers_never_reads_stdin_even_where_the_check_misses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The second guard: with the key check switched off, the config's remote code reaches
    transformers, which must refuse it (trust_remote_code=False) and must not consume the
    reviews waiting on standard input."""
    config = AutoConfig.for_model("speecht5_hifigan")
    config.auto_map = REMOTE_CODE
    monkeypatch.setattr(guarded_loading, "code_key", lambda *args, **kwargs: None)
    monkeypatch.setattr(sys, "stdin", io.StringIO(PIPED))
    with pytest.raises(ImdbError, match="cannot load its model"):
        guarded_loading.model_from_config(config, "crafted")
    assert sys.stdin.read() == PIPED


def test_stdin_is_out_of_reach_while_loading() -> None:
    saved = sys.stdin
    with guarded_loading.no_stdin(), pytest.raises(EOFError):
        input("run the custom code? ")
    assert sys.stdin is saved


# --------------------------------------------------------------------------- tokenizer


@pytest.fixture
def run_copy(trained_root: Path, tmp_path: Path) -> tuple[Workspace, Path]:
    space = Workspace(_copy(trained_root, tmp_path, "ws"))
    return space, resolve_run(space, "tiny-bert").path


def test_a_run_records_its_tokenizer_files(run_copy: tuple[Workspace, Path]) -> None:
    _, run_dir = run_copy
    recorded = json.loads((run_dir / "ledger.json").read_text())["data"][TOKENIZER_FILES]
    on_disk = {p.name for p in (run_dir / ENCODER_DIR).iterdir()} - {"config.json"}
    assert set(recorded) == on_disk and "tokenizer.json" in recorded


def _swap_a_token(path: Path) -> None:
    """Another tokenizer that still loads: two vocabulary entries trade places."""
    document = json.loads(path.read_text())
    vocab = document["model"]["vocab"]
    vocab["good"], vocab["bad"] = vocab["bad"], vocab["good"]
    path.write_text(json.dumps(document))


@pytest.mark.parametrize("command", ["predict", "export"])
def test_a_run_whose_tokenizer_was_swapped_is_refused(
    run_copy: tuple[Workspace, Path], tmp_path: Path, command: str
) -> None:
    space, run_dir = run_copy
    tokenizer = run_dir / ENCODER_DIR / "tokenizer.json"
    _swap_a_token(tokenizer)
    args = ["--text", "good"] if command == "predict" else ["--out", str(tmp_path / "out")]
    result = imdb(space.root, command, str(run_dir), *args)
    assert_one_red_line(result, str(tokenizer), "not the tokenizer the run was trained with")
    assert not (tmp_path / "out").exists()


def test_a_file_planted_beside_the_runs_tokenizer_is_refused(
    run_copy: tuple[Workspace, Path],
) -> None:
    space, run_dir = run_copy
    planted = run_dir / ENCODER_DIR / "added_tokens.json"
    planted.write_text(json.dumps({"goodbad": 30522}))
    result = imdb(space.root, "predict", str(run_dir), "--text", "good")
    assert_one_red_line(result, str(planted), "not one of the run's tokenizer files")


def test_a_run_from_before_tokenizer_checksums_loads_unchecked(
    run_copy: tuple[Workspace, Path],
) -> None:
    space, run_dir = run_copy
    _edit_json(run_dir / "ledger.json", lambda d: d["data"].pop(TOKENIZER_FILES))
    result = imdb(space.root, "predict", str(run_dir), "--text", "good")
    assert result.exit_code == 0, result.output
