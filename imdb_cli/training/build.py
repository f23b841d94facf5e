"""What a training run is built from: the hardware settings (device, precision, attention
kernel, TF32, compile check), the seeded model, and the splits it reads."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from imdb_cli import registry
from imdb_cli.config import ModelSpec, TrainConfig
from imdb_cli.console import debug
from imdb_cli.data.split import SPLITS
from imdb_cli.data.tokenized import (
    TokenizedCache,
    TokenizedSplit,
    check_vocabulary,
    load_split,
)
from imdb_cli.device import (
    autocast,
    choose_attention,
    choose_device,
    choose_precision,
    compile_problem,
    use_tf32,
)
from imdb_cli.errors import ImdbError
from imdb_cli.model import EncoderForClassification
from imdb_cli.training.batches import limit_split
from imdb_cli.training.rng import seed_everything


@dataclass(frozen=True)
class Hardware:
    device: torch.device
    precision: str  # fp32, bf16 or fp16
    attention: str  # the encoder's attn_implementation


def choose_hardware(spec: ModelSpec, config: TrainConfig) -> Hardware:
    """Device, precision and attention kernel from the options; TF32 set; --compile checked
    before the run starts rather than at its first step."""
    device = choose_device(config.device)
    precision = choose_precision(config.precision, device)
    if config.compile and (problem := compile_problem(device)):
        raise ImdbError(f"--compile: {problem}; train without --compile")
    use_tf32(device, config.tf32)
    model_type = str(registry.architecture_config(spec).model_type)
    attention = choose_attention(config.attention, model_type, device, precision)
    return Hardware(device, precision, attention)


def build_model(
    spec: ModelSpec,
    hardware: Hardware,
    seed: int,
    num_labels: int,
    splits: dict[str, TokenizedSplit] | None = None,
    cache: TokenizedCache | None = None,
) -> EncoderForClassification:
    """The classifier on its device, with a head of `num_labels` classes, seeded first: the
    head's init (and a random-init encoder's) is a function of the seed. `splits` (from
    `cache`) are checked against its vocabulary before any training step."""
    seed_everything(seed)
    encoder = registry.build_encoder(spec, attn_implementation=hardware.attention)
    vocab = getattr(encoder.config, "vocab_size", None)
    if splits is not None and cache is not None and isinstance(vocab, int):
        for split in splits.values():
            check_vocabulary(split, vocab, cache.path)
    model = EncoderForClassification(encoder, num_labels).to(hardware.device)
    frozen = freeze_unreached(model, hardware.device, hardware.precision)
    if frozen:
        debug(f"never reached by the forward, so not trained: {', '.join(frozen)}")
    return model


def load_splits(cache: TokenizedCache, config: TrainConfig) -> dict[str, TokenizedSplit]:
    """Every split of the cache; the train split cut to --limit-train."""
    splits = {split: load_split(cache, split) for split in SPLITS}
    splits["train"] = limit_split(splits["train"], config.limit_train, config.seed)
    return splits


def freeze_unreached(
    model: EncoderForClassification, device: torch.device, precision: str = "fp32"
) -> list[str]:
    """Stop asking for gradients of parameters the forward never reaches; their names.

    BERT's own pooler is the usual one: this head pools by masked mean, so the pooler
    never gets a gradient and never changes. Frozen, DDP needs no search for unused
    parameters after every backward (find_unused_parameters=False), and the optimizer
    skips them. Found with one tiny forward and backward, in eval mode and with the RNG
    state restored afterwards, so the run's randomness is untouched; in the run's
    precision, because flash attention refuses fp32.
    """
    was_training = model.training
    ids = torch.ones((2, 4), dtype=torch.long, device=device)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], device=device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        model.eval()
        with autocast(device, precision):
            logits = model(ids, mask).logits
        logits.float().sum().backward()
    unreached = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    for name, parameter in model.named_parameters():
        parameter.grad = None
        if name in unreached:
            parameter.requires_grad_(False)
    model.train(was_training)
    return unreached
