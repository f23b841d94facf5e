"""The switchable pieces of the fast path: length-grouped batches, mask-free full batches,
length-sorted evaluation, --compile and --tf32."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from cli_support import assert_one_red_line
from training_support import TINY, tiny_config

from imdb_cli import device, registry
from imdb_cli.data.tokenized import TokenizedSplit, load_split
from imdb_cli.device import choose_attention
from imdb_cli.errors import ImdbError
from imdb_cli.model import EncoderForClassification
from imdb_cli.runs import checkpoints
from imdb_cli.runs.caches import cache_of_run
from imdb_cli.runs.ledger import read_ledger
from imdb_cli.training.batches import batches, epoch_order, length_grouped, make_batch
from imdb_cli.training.build import freeze_unreached
from imdb_cli.training.inference import predict
from imdb_cli.training.loop import train
from imdb_cli.training.metrics import LOG_EVERY
from imdb_cli.workspace import Workspace

pytestmark = pytest.mark.usefixtures("single_thread")  # conftest.py

CPU = torch.device("cpu")
FAST = ("--epochs", "1", "--limit-train", "32", "--device", "cpu")


def _padded_tokens(order: np.ndarray, lengths: np.ndarray, batch_size: int) -> int:
    """Positions a pass computes: each batch is trimmed to its longest review."""
    return sum(int(lengths[idx].max()) * len(idx) for idx in batches(len(order), batch_size, order))


# --------------------------------------------------------------------------- grouping


def test_length_grouped_order_is_a_seeded_permutation_with_less_padding() -> None:
    lengths = np.random.default_rng(0).integers(20, 513, size=2_003)
    order = epoch_order(len(lengths), seed=42, epoch=1)

    grouped = length_grouped(order, lengths, 8, seed=42, epoch=1)

    assert sorted(grouped.tolist()) == list(range(len(lengths)))
    again = length_grouped(order, lengths, 8, seed=42, epoch=1)
    assert np.array_equal(grouped, again)  # resume replays the same batches
    assert not np.array_equal(grouped, length_grouped(order, lengths, 8, seed=42, epoch=2))
    real = int(lengths.sum())
    random_waste = _padded_tokens(order, lengths, 8) - real
    grouped_waste = _padded_tokens(grouped, lengths, 8) - real
    assert grouped_waste < random_waste / 10, (grouped_waste, random_waste)
    # The short last batch stays last: every other batch is full.
    assert [len(b) for b in batches(len(grouped), 8, grouped)][-1] == len(lengths) % 8


def test_grouped_batches_are_not_sorted_across_the_epoch() -> None:
    lengths = np.arange(1_000) % 500 + 10
    order = epoch_order(len(lengths), seed=3, epoch=1)
    grouped = length_grouped(order, lengths, 4, seed=3, epoch=1)
    widths = [int(lengths[idx].max()) for idx in batches(len(grouped), 4, grouped)]
    assert widths != sorted(widths) and widths != sorted(widths, reverse=True)


def test_under_ddp_each_global_batch_is_split_over_the_ranks() -> None:
    lengths = np.random.default_rng(1).integers(5, 300, size=64)
    grouped = length_grouped(np.arange(64), lengths, 8, seed=0, epoch=1)
    global_batches = [set(b.tolist()) for b in batches(64, 8, grouped)]
    for rank in (0, 1):
        for step, idx in enumerate(batches(64, 4, grouped, rank=rank, world_size=2)):
            assert set(idx.tolist()) <= global_batches[step]


def test_training_with_group_by_length_records_it_and_learns(prepared: Workspace) -> None:
    spec = registry.load_spec(TINY)
    run = train(prepared, spec, tiny_config(limit_train=96, epochs=2, group_by_length=True))
    assert run.ledger.status == "completed"
    assert run.ledger.config.group_by_length is True
    assert run.ledger.epochs[1].train_loss < run.ledger.epochs[0].train_loss


# --------------------------------------------------------------------------- masks and order


def _split(lengths: list[int], width: int = 12) -> TokenizedSplit:
    rng = np.random.default_rng(5)
    input_ids = np.zeros((len(lengths), width), dtype=np.int32)
    for row, length in enumerate(lengths):
        input_ids[row, :length] = rng.integers(1000, 2000, size=length)
    return TokenizedSplit(
        review_ids=np.arange(100, 100 + len(lengths), dtype=np.int64),
        input_ids=input_ids,
        lengths=np.asarray(lengths, dtype=np.int32),
        labels=np.arange(len(lengths), dtype=np.int64) % 2,
        pad_token_id=0,
    )


@pytest.fixture
def tiny_model() -> EncoderForClassification:
    torch.manual_seed(0)
    return EncoderForClassification(registry.build_encoder(registry.load_spec(TINY))).eval()


def test_a_batch_without_padding_carries_no_mask_and_gives_the_same_logits(tiny_model) -> None:
    split = _split([9, 9, 4, 9])
    full = make_batch(split, np.array([0, 1, 3]), CPU)
    padded = make_batch(split, np.array([0, 2]), CPU)
    assert full.attention_mask is None
    assert padded.attention_mask is not None and padded.attention_mask.sum().item() == 13
    with torch.no_grad():
        without = tiny_model(full.input_ids, None)
        ones = tiny_model(full.input_ids, torch.ones_like(full.input_ids))
    torch.testing.assert_close(without.logits, ones.logits, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(without.pooled, ones.pooled, rtol=1e-5, atol=1e-6)


def test_prediction_runs_in_length_order_but_answers_in_split_order(tiny_model) -> None:
    split = _split([12, 3, 7, 12, 1, 5, 9])
    batched = predict(tiny_model, split, batch_size=3, device=CPU, keep_pooled=True)
    assert batched.review_ids.tolist() == list(range(100, 107))
    for row in range(len(split)):
        alone = predict(
            tiny_model,
            split.subset(np.array([row])),
            batch_size=1,
            device=CPU,
            keep_pooled=True,
        )
        np.testing.assert_allclose(batched.probs[row], alone.probs[0], rtol=1e-5)
        assert batched.pooled is not None and alone.pooled is not None
        np.testing.assert_allclose(batched.pooled[row], alone.pooled[0], rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- --compile


def test_compile_trains_through_the_compiled_forward(
    prepared: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    graphs: list[Any] = []

    def counting_backend(graph: torch.fx.GraphModule, example_inputs: Any) -> Callable:
        graphs.append(graph)
        return graph.forward  # run the captured graph as is: no C++ build in a unit test

    compile_with = functools.partial(torch.compile, backend=counting_backend)
    monkeypatch.setattr(torch, "compile", compile_with)
    run = train(
        prepared, registry.load_spec(TINY), tiny_config(limit_train=32, epochs=1, compile=True)
    )
    assert graphs, "the training forward did not go through torch.compile"
    assert run.ledger.status == "completed" and run.ledger.config.compile is True
    model, _ = checkpoints.load_classifier(run, "best")  # plain parameter names on disk
    assert not any("_orig_mod" in name for name in model.state_dict())


def test_compile_failing_at_the_first_step_is_one_line_and_marks_the_run_failed(
    run_cli: Callable, prepared: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_backend(graph: torch.fx.GraphModule, example_inputs: Any) -> Callable:
        raise RuntimeError("no kernel for this op")

    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend=broken_backend))
    result = run_cli("train", TINY, *FAST, "--compile", "--run-name", "broken")
    assert_one_red_line(result, "--compile", "torch.compile failed", "without --compile")
    ledger = read_ledger(prepared.runs / TINY / "broken")
    assert ledger.status == "failed" and "--compile" in (ledger.error or "")


def test_compile_without_a_cpu_compiler_is_refused_before_the_run_starts(
    run_cli: Callable, prepared: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from torch._inductor import config as inductor_config

    monkeypatch.setenv("CXX", "/nonexistent/g++")
    with inductor_config.patch({"cpp.cxx": (None, "/nonexistent/g++")}):
        result = run_cli("train", TINY, *FAST, "--compile")
    assert_one_red_line(result, "--compile", "C++ compiler", "/nonexistent/g++")
    assert not (prepared.runs / TINY).exists()  # nothing created, nothing lost


def test_compile_problem_finds_none_on_this_machine_with_a_compiler() -> None:
    from torch._inductor import cpp_builder

    try:
        cpp_builder.get_cpp_compiler()
    except Exception:
        pytest.skip("no C++ compiler here")
    assert device.compile_problem(CPU) is None


@pytest.mark.slow
def test_compile_with_inductor_matches_eager_training(prepared: Workspace) -> None:
    spec = registry.load_spec(TINY)
    eager = train(prepared, spec, tiny_config(limit_train=64, epochs=1))
    compiled = train(prepared, spec, tiny_config(limit_train=64, epochs=1, compile=True))
    # Inductor draws dropout masks from its own RNG stream, so the runs are not bit-equal;
    # the same model and data keep them close.
    assert compiled.ledger.epochs[0].train_loss == pytest.approx(
        eager.ledger.epochs[0].train_loss, rel=1e-2
    )
    assert compiled.ledger.status == "completed"
    test = compiled.ledger.test
    assert test is not None
    model, _ = checkpoints.load_classifier(compiled, "best")  # the plain module reads it back
    cache = cache_of_run(prepared, compiled.ledger)
    again = predict(model, load_split(cache, "test"), batch_size=64, device=CPU)
    np.testing.assert_allclose(again.probs, test.probs, rtol=1e-5)


# --------------------------------------------------------------------------- --tf32


def test_tf32_is_recorded_and_can_be_switched_off(run_cli: Callable, prepared: Workspace) -> None:
    result = run_cli("train", TINY, *FAST, "--no-tf32", "--run-name", "ieee")
    assert result.exit_code == 0, result.output
    assert read_ledger(prepared.runs / TINY / "ieee").config.tf32 is False


@pytest.mark.cuda
def test_tf32_switch_sets_the_cuda_matmul_precision() -> None:
    gpu = torch.device("cuda")
    device.use_tf32(gpu, False)
    assert not _tf32_on()
    device.use_tf32(gpu, True)
    assert _tf32_on()


def _tf32_on() -> bool:
    matmul = torch.backends.cuda.matmul
    if hasattr(matmul, "fp32_precision"):
        return bool(matmul.fp32_precision == "tf32")
    return bool(matmul.allow_tf32)


# --------------------------------------------------------------------------- packing


REFERENCE = "reference_varlen"


def _reference_varlen_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    sliding_window: int | None = None,
    cu_seq_lens_q: torch.Tensor | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """What flash attention computes, in plain SDPA. Packed (cu_seq_lens given): each token
    attends only within its own review; a batch without padding: within its row. Local
    layers: within the sliding window (flash's window_size = sliding_window - 1 each side,
    as transformers passes it)."""
    assert attention_mask is None, "a packing model gets no padding mask"
    total = query.shape[2]
    review = torch.zeros(total, dtype=torch.long)  # a batch without padding: rows are reviews
    if cu_seq_lens_q is not None:
        review = torch.repeat_interleave(
            torch.arange(len(cu_seq_lens_q) - 1), torch.diff(cu_seq_lens_q).long()
        )
    allowed = review[:, None] == review[None, :]
    if sliding_window is not None:
        positions = torch.arange(total)
        allowed &= (positions[:, None] - positions[None, :]).abs() <= sliding_window - 1
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=allowed, scale=scaling)
    return out.transpose(1, 2).contiguous(), None


@pytest.fixture
def reference_packing(monkeypatch: pytest.MonkeyPatch) -> str:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, flash_attention_mask

    from imdb_cli import model as model_module

    AttentionInterface.register(REFERENCE, _reference_varlen_attention)
    AttentionMaskInterface.register(REFERENCE, flash_attention_mask)
    monkeypatch.setattr(model_module, "PACKING_ATTENTION", frozenset({REFERENCE}))
    return REFERENCE


def test_modernbert_packed_without_padding_equals_the_padded_batch(reference_packing: str) -> None:
    spec = registry.load_spec("tiny-modernbert")  # local window 32: lengths below cross it
    torch.manual_seed(0)
    padded_model = EncoderForClassification(registry.build_encoder(spec)).eval()
    packed_model = EncoderForClassification(
        registry.build_encoder(spec, attn_implementation=reference_packing)
    ).eval()
    packed_model.load_state_dict(padded_model.state_dict())
    assert packed_model.packs and not padded_model.packs

    split = _split([70, 9, 41, 70, 23], width=70)
    idx = np.arange(5)
    padded_batch = make_batch(split, idx, CPU)
    packed_batch = make_batch(split, idx, CPU, pack=True)
    assert packed_batch.packing is not None and padded_batch.packing is None
    assert packed_batch.packing.cu_seqlens.tolist() == [0, 70, 79, 120, 190, 213]
    with torch.no_grad():
        padded = padded_model(padded_batch.input_ids, padded_batch.attention_mask)
        packed = packed_model(
            packed_batch.input_ids, packed_batch.attention_mask, packing=packed_batch.packing
        )
    torch.testing.assert_close(packed.pooled, padded.pooled, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(packed.logits, padded.logits, rtol=1e-4, atol=1e-5)

    # predict packs by itself, and answers in split order
    by_predict = predict(packed_model, split, batch_size=2, device=CPU)
    expected = torch.softmax(padded.logits, -1).numpy()
    np.testing.assert_allclose(by_predict.probs, expected, rtol=1e-4, atol=1e-5)


def test_attention_choice_and_its_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    gpu = torch.device("cuda")
    assert choose_attention("auto", "modernbert", CPU, "fp32") == "sdpa"
    assert choose_attention("eager", "bert", CPU, "fp32") == "eager"
    monkeypatch.setattr("importlib.util.find_spec", lambda name: object())
    assert choose_attention("auto", "modernbert", gpu, "bf16") == "flash_attention_2"
    assert choose_attention("auto", "bert", gpu, "bf16") == "sdpa"  # BERT: not packed
    assert choose_attention("auto", "modernbert", gpu, "fp32") == "sdpa"
    with pytest.raises(ImdbError, match="needs a CUDA GPU"):
        choose_attention("flash_attention_2", "modernbert", CPU, "bf16")
    with pytest.raises(ImdbError, match="bf16 or fp16"):
        choose_attention("flash_attention_2", "modernbert", gpu, "fp32")
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    assert choose_attention("auto", "modernbert", gpu, "bf16") == "sdpa"
    with pytest.raises(ImdbError, match="flash-attn package is not installed"):
        choose_attention("flash_attention_2", "modernbert", gpu, "bf16")


def test_flash_attention_on_the_cpu_is_one_red_line(run_cli: Callable, prepared: Workspace) -> None:
    result = run_cli("train", TINY, *FAST, "--attention", "flash_attention_2")
    assert_one_red_line(result, "--attention flash_attention_2", "CUDA")
    result = run_cli("train", TINY, *FAST, "--attention", "flash")
    assert_one_red_line(result, "--attention", "sdpa")


@pytest.mark.cuda
def test_modernbert_with_flash_attention_packs_and_matches_sdpa() -> None:
    pytest.importorskip("flash_attn")
    gpu = torch.device("cuda")
    spec = registry.load_spec("tiny-modernbert")
    torch.manual_seed(0)
    sdpa = EncoderForClassification(registry.build_encoder(spec)).to(gpu).eval()
    flash = EncoderForClassification(
        registry.build_encoder(spec, attn_implementation="flash_attention_2")
    ).to(gpu)
    flash.load_state_dict(sdpa.state_dict())
    flash.eval()
    assert flash.packs
    split = _split([70, 9, 41, 70, 23], width=70)
    expected = predict(sdpa, split, batch_size=5, device=gpu, precision="bf16")
    packed = predict(flash, split, batch_size=5, device=gpu, precision="bf16")
    np.testing.assert_allclose(packed.probs, expected.probs, atol=2e-2)


# --------------------------------------------------------------------------- unused parameters


@pytest.mark.parametrize(("key", "expected"), [(TINY, {"pooler"}), ("tiny-modernbert", set())])
def test_parameters_the_forward_never_reaches_are_frozen_without_touching_the_rng(
    key: str, expected: set[str]
) -> None:
    torch.manual_seed(0)
    model = EncoderForClassification(registry.build_encoder(registry.load_spec(key))).train()
    rng = torch.get_rng_state().clone()

    frozen = freeze_unreached(model, CPU)

    assert {name.split(".")[1] for name in frozen} == expected
    assert torch.equal(rng, torch.get_rng_state())  # dropout draws of the run are unchanged
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable.isdisjoint(frozen) and "head.weight" in trainable


# --------------------------------------------------------------------------- ready masks


def _tiny_roberta() -> torch.nn.Module:
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.for_model(
        "roberta",
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=130,
    )
    return AutoModel.from_config(config)


@pytest.mark.parametrize("build", ["tiny-bert", "roberta"])
def test_bert_family_gets_a_ready_mask_that_transformers_never_inspects(
    build: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import masking_utils

    torch.manual_seed(0)
    encoder = (
        registry.build_encoder(registry.load_spec(build)) if build != "roberta" else _tiny_roberta()
    )
    model = EncoderForClassification(encoder).eval()
    assert model.ready_mask
    batch = make_batch(_split([12, 3, 7, 12]), np.arange(4), CPU)
    assert batch.attention_mask is not None
    with torch.no_grad():
        model.ready_mask = False  # the 2-D mask, as transformers would take it
        expected = model(batch.input_ids, batch.attention_mask)
        model.ready_mask = True

        def inspected(*args: Any, **kwargs: Any) -> bool:
            raise AssertionError("transformers looked into the mask (a sync on a GPU)")

        monkeypatch.setattr(masking_utils, "_ignore_bidirectional_mask_sdpa", inspected)
        ready = model(batch.input_ids, batch.attention_mask)
    torch.testing.assert_close(ready.logits, expected.logits, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ready.pooled, expected.pooled, rtol=1e-5, atol=1e-6)


def test_models_with_local_attention_or_eager_kernels_keep_the_2d_mask() -> None:
    modern = EncoderForClassification(registry.build_encoder(registry.load_spec("tiny-modernbert")))
    eager = EncoderForClassification(
        registry.build_encoder(registry.load_spec(TINY), attn_implementation="eager")
    )
    assert not modern.ready_mask and not eager.ready_mask


# --------------------------------------------------------------------------- on a GPU


def _sync_warnings(workspace: Workspace, steps: int) -> int:
    """Host-device syncs during one `train` of `steps` steps (batch 16) on the GPU."""
    config = tiny_config(device="cuda", limit_train=16 * steps, epochs=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            train(workspace, registry.load_spec(TINY), config)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message).lower() for w in caught)


@pytest.mark.cuda
def test_training_steps_never_wait_for_the_gpu(prepared: Workspace) -> None:
    _sync_warnings(prepared, 5)  # first use: cuBLAS handles, allocator
    few, many = _sync_warnings(prepared, 10), _sync_warnings(prepared, 30)
    # 20 more steps add one metrics read (every LOG_EVERY = 20 batches), not 20 syncs.
    assert many - few <= 20 // LOG_EVERY + 2, (few, many)


@pytest.mark.cuda
def test_compile_and_length_groups_train_on_the_gpu(prepared: Workspace) -> None:
    config = tiny_config(
        device="cuda", limit_train=64, epochs=1, compile=True, group_by_length=True
    )
    run = train(prepared, registry.load_spec(TINY), config)
    assert run.ledger.status == "completed"
    assert run.ledger.environment.device_type == "cuda"
    assert run.ledger.environment.precision in ("bf16", "fp16")
