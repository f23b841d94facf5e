"""Fault injection on the hand-off surfaces: folders written by `imdb export` (and run folders)
crafted or damaged by someone else, and `export --out` aimed at what the user has. Each case
is one red line, a non-zero exit, no code run, and nothing the user had lost or changed."""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_support import assert_one_red_line
from fault_support import fill, full_disk
from predict_support import imdb
from transformers import AutoConfig

from imdb_cli import guarded_loading
from imdb_cli.errors import ImdbError
from imdb_cli.runs.run import ENCODER_DIR
from imdb_cli.runs.select import resolve_run
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
    recorded = json.loads((run_dir / "ledger.json").read_text())["data"]["tokenizer_files_sha256"]
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
    _edit_json(run_dir / "ledger.json", lambda d: d["data"].pop("tokenizer_files_sha256"))
    result = imdb(space.root, "predict", str(run_dir), "--text", "good")
    assert result.exit_code == 0, result.output


# --------------------------------------------------------------------------- export --out


@pytest.fixture
def own_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """model_configs/ and dataset_configs/ copied, so that a failure could never reach the
    checkout's own."""
    from imdb_cli import registry
    from imdb_cli.data import entry

    folders = {}
    for name, source, variable in (
        ("models", registry.configs_dir(), "IMDB_MODEL_CONFIGS"),
        ("datasets", entry.configs_dir(), "IMDB_DATASET_CONFIGS"),
    ):
        folders[name] = shutil.copytree(source, tmp_path / name)
        monkeypatch.setenv(variable, str(folders[name]))
    return folders


def _outs(space: Workspace, run_dir: Path, own: dict[str, Path]) -> dict[str, tuple[Path, str]]:
    return {
        "the workspace": (space.root, "is the workspace"),
        "inside the workspace": (space.root / "exports" / "x", "lies inside the workspace"),
        "the run exported": (run_dir, "the workspace"),
        "around the workspace": (space.root.parent, "holds the workspace"),
        "model_configs": (own["models"], "is model_configs/"),
        "inside dataset_configs": (own["datasets"] / "x", "lies inside dataset_configs/"),
    }


OUT_CASES = [
    "the workspace",
    "inside the workspace",
    "the run exported",
    "around the workspace",
    "model_configs",
    "inside dataset_configs",
]


@pytest.mark.parametrize("case", OUT_CASES)
def test_export_force_never_replaces_imdbs_own_folders(
    run_copy: tuple[Workspace, Path], own_folders: dict[str, Path], case: str
) -> None:
    space, run_dir = run_copy
    out, says = _outs(space, run_dir, own_folders)[case]
    everything = space.root.parent
    before = _snapshot(everything)
    result = imdb(space.root, "export", "tiny-bert", "--out", str(out), "--force")
    assert_one_red_line(result, f"--out {out}", says)
    assert _snapshot(everything) == before


def test_export_force_replaces_only_an_earlier_export(trained_root: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    result = imdb(trained_root, "export", "tiny-bert", "--out", str(mine), "--force")
    assert_one_red_line(result, str(mine), "--force replaces only a folder written by")
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    earlier = tmp_path / "earlier"
    assert imdb(trained_root, "export", "tiny-bert", "--out", str(earlier)).exit_code == 0
    (earlier / "stray.txt").write_text("left by hand")
    result = imdb(trained_root, "export", "tiny-bert", "--out", str(earlier), "--force")
    assert result.exit_code == 0, result.output
    assert (earlier / ".imdb-export").is_file() and not (earlier / "stray.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["earlier", "mine"]


def test_export_out_that_is_a_link_is_refused(trained_root: Path, tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    result = imdb(trained_root, "export", "tiny-bert", "--out", str(tmp_path / "link"))
    assert_one_red_line(result, "symbolic link")
    assert (tmp_path / "link").is_symlink() and list(real.iterdir()) == []


@pytest.mark.parametrize("force", [False, True])
def test_of_two_exports_into_one_folder_exactly_one_wins(
    trained_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, force: bool
) -> None:
    """A second export runs to its end while the first is writing; the first then refuses,
    and the folder is the second's, whole."""
    from imdb_cli.handoff import export

    out = tmp_path / "out"
    flags = ["--force"] if force else []
    if force:
        assert imdb(trained_root, "export", "tiny-bert", "--out", str(out)).exit_code == 0
    real = export._write_hf
    raced: list[bool] = []

    def racing(*args: Any) -> None:
        if not raced:
            raced.append(True)
            export.export(Workspace(trained_root), "tiny-bert", out, force=force)
        real(*args)

    monkeypatch.setattr(export, "_write_hf", racing)
    result = imdb(trained_root, "export", "tiny-bert", "--out", str(out), *flags)
    assert_one_red_line(result, str(out), "another process wrote it")
    assert raced and (out / ".imdb-export").is_file()
    assert imdb(trained_root, "predict", str(out), "--text", "fine").exit_code == 0
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temp folder left


def test_what_a_killed_export_left_is_removed_next_time(trained_root: Path, tmp_path: Path) -> None:
    dead = 999_999_999
    leftover = tmp_path / f".tmp-out-{dead}-0123abcd"
    (leftover / "sub").mkdir(parents=True)
    (leftover / "sub" / "model.safetensors").write_bytes(b"half")
    others = [
        tmp_path / f".tmp-other-{dead}-0123abcd",
        tmp_path / f".tmp-out-{os.getpid()}-0123abcd",
    ]
    for path in others:
        path.write_text("not this export's")
    result = imdb(trained_root, "export", "tiny-bert", "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert f"removed {leftover}" in result.output
    assert not leftover.exists() and all(p.exists() for p in others)


def _no_space(*args: Any, **kwargs: Any) -> None:
    from safetensors import SafetensorError

    raise SafetensorError(
        'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No '
        'space left on device" })'
    )


def test_a_full_disk_during_export_is_one_line_and_leaves_nothing(
    trained_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import transformers.modeling_utils

    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", _no_space)
    out = tmp_path / "out"
    result = imdb(trained_root, "export", "tiny-bert", "--out", str(out))
    assert_one_red_line(result, "no space left on device while writing", str(out))
    assert list(tmp_path.iterdir()) == []


def test_a_real_full_disk_during_export(trained_root: Path, tmp_path: Path) -> None:
    """Room for the tokenizer (about 0.7 MB), not for the weights (8 MB)."""
    with full_disk(tmp_path / "disk", size="16m", leave_free=1 << 30) as disk:
        earlier = disk / "earlier.txt"
        earlier.write_text("the user's")
        fill(disk, leave_free=3 << 20)
        result = imdb(trained_root, "export", "tiny-bert", "--out", str(disk / "out"))
        assert_one_red_line(result, "no space left on device while writing", str(disk / "out"))
        assert sorted(p.name for p in disk.iterdir()) == [".ballast", "earlier.txt"]
        assert earlier.read_text() == "the user's"


# --------------------------------------------------------------------------- export config


def _positions(document: dict[str, Any]) -> int:
    return int(document["encoder"]["max_position_embeddings"])


def _three_labels(document: dict[str, Any], names: list[str]) -> None:
    """Three classes, consistently named (label_names and id2label)."""
    document.update(label_names=names, id2label={str(i): n.upper() for i, n in enumerate(names)})


MISFITS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "more label names than outputs": (
        lambda d: _three_labels(d, ["negative", "neutral", "positive"]),
        "'label_names' lists 3 classes but model.safetensors has 2 outputs",
    ),
    "label names that are numbers": (
        lambda d: d.update(label_names=[0, 1]),
        "'label_names' should list two or more distinct class names as text",
    ),
    "a label name twice": (
        lambda d: d.update(label_names=["good", "good"]),
        "'label_names' should list",
    ),
    "id2label of another size": (
        lambda d: d.update(id2label={"0": "A", "1": "B", "2": "C"}),
        "'id2label' has 3 classes, 'label_names' 2",
    ),
    "unknown truncation strategy": (
        lambda d: d["truncation"].update(strategy="middle"),
        "'truncation.strategy' should be one of head, tail, head+tail (got 'middle')",
    ),
    "max_length beyond the positions": (
        lambda d: d["truncation"].update(max_length=_positions(d) + 1),
        "is more than the encoder's",
    ),
    "max_length as text": (
        lambda d: d["truncation"].update(max_length="128"),
        "'truncation.max_length' should be a whole number >= 8 (got '128')",
    ),
    "max_length true": (
        lambda d: d["truncation"].update(max_length=True),
        "'truncation.max_length' should be a whole number",
    ),
    "truncation a list": (lambda d: d.update(truncation=[128]), "'truncation' should be a mapping"),
    "unknown quantization": (
        lambda d: d.update(quantization="int4"),
        "'quantization' should be null or int8",
    ),
    "positions as text": (
        lambda d: d["encoder"].update(max_position_embeddings="512"),
        "'encoder.max_position_embeddings' should be a whole number",
    ),
}


@pytest.mark.parametrize("case", list(MISFITS))
def test_an_export_config_that_does_not_fit_is_refused_naming_the_key(
    hf_export_root: Path, trained_root: Path, tmp_path: Path, case: str
) -> None:
    change, says = MISFITS[case]
    folder = _copy(hf_export_root, tmp_path)
    _edit_json(folder / "config.json", change)
    result = imdb(trained_root, "predict", str(folder), "--text", "A fine film.")
    assert_one_red_line(result, str(folder / "config.json"), says)
    assert result.stdout == ""


def _tiny_onnx(path: Path, classes: int) -> None:
    """An ONNX graph with the export's inputs and outputs (logits of `classes` columns)."""
    onnx = pytest.importorskip("onnx", reason="the onnx extra: pip install -e '.[onnx]'")
    pytest.importorskip("onnxruntime", reason="the onnx extra: pip install -e '.[onnx]'")
    from onnx import TensorProto, helper

    def constant(name: str, width: int) -> Any:
        return helper.make_tensor(name, TensorProto.FLOAT, [1, width], [0.5] * width)

    nodes = [
        helper.make_node("Cast", ["input_ids"], ["ids"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["ids"], ["mean"], keepdims=1, axes=[1]),
        helper.make_node("Mul", ["mean", "w_logits"], ["logits"]),
        helper.make_node("Mul", ["mean", "w_pooled"], ["pooled"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [
            helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "sequence"])
            for name in ("input_ids", "attention_mask")
        ],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes]),
            helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["batch", 4]),
        ],
        [constant("w_logits", classes), constant("w_pooled", 4)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, str(path))


def test_an_onnx_export_with_more_label_names_than_logits_is_refused(
    hf_export_root: Path, trained_root: Path, tmp_path: Path
) -> None:
    folder = _copy(hf_export_root, tmp_path)
    (folder / "model.safetensors").unlink()
    _tiny_onnx(folder / "model.onnx", classes=2)
    fine = imdb(trained_root, "predict", str(folder), "--text", "A fine film.")
    assert fine.exit_code == 0, fine.output  # the crafted graph itself loads and runs
    _edit_json(folder / "config.json", lambda d: _three_labels(d, ["a", "b", "c"]))
    result = imdb(trained_root, "predict", str(folder), "--text", "A fine film.")
    assert_one_red_line(result, "'label_names' lists 3 classes but model.onnx has 2 outputs")
