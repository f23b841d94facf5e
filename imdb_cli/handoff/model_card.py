"""The model card (README.md) of a folder written by `imdb export`: what the model is, its
data, recipe and results, how to load it, what it cannot reproduce, and the versions."""

from __future__ import annotations

import json
import platform
import shlex
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import torch
import transformers

from imdb_cli import __version__, registry
from imdb_cli.compare.stats import wilson_interval
from imdb_cli.errors import ImdbError
from imdb_cli.runs.ledger import Ledger

if TYPE_CHECKING:
    from imdb_cli.handoff.export import ExportResult


def model_card(result: ExportResult, config: Any) -> str:
    ledger = result.run.ledger
    return "\n".join(
        [
            _card_header(result, config, ledger),
            _card_model(result, config, ledger),
            _card_data(ledger),
            _card_recipe(ledger),
            _card_results(result, ledger),
            _card_usage(result, config),
            _card_limits(result, config),
            _card_versions(result, ledger),
        ]
    )


def _card_header(result: ExportResult, config: Any, ledger: Ledger) -> str:
    kind = "Hugging Face folder"
    if result.format == "onnx":
        precision = f"{result.int8.method} int8" if result.int8 else "fp32"
        kind = f"ONNX model ({result.written_graph} graph, {precision})"
    names = ", ".join(config.label_names)
    return (
        "---\n"
        f"library_name: {'transformers' if result.format == 'hf' else 'onnx'}\n"
        "pipeline_tag: text-classification\n"
        "tags: [imdb-cli, text-classification]\n"
        "---\n\n"
        f"# {ledger.model}: a {len(config.label_names)}-class review classifier ({names})\n\n"
        f"The {kind} written by `imdb export` (imdb-cli {__version__}) on "
        f"{datetime.now(UTC).strftime('%Y-%m-%d')} from run `{ledger.model}/"
        f"{ledger.run_id}`, checkpoint `{result.checkpoint.name}` (the best validation "
        f"epoch, {ledger.best_epoch}).\n"
    )


def _base_encoder(model_key: str) -> str:
    try:
        spec = registry.load_spec(model_key)
    except ImdbError:
        return "unknown (its model entry is no longer registered)"
    if spec.pretrained is None:
        return "random initialisation (no pretrained weights)"
    return f"`{spec.pretrained}`"


def _card_model(result: ExportResult, config: Any, ledger: Ledger) -> str:
    encoder = config.encoder
    cut = config.truncation
    strategy = cut["strategy"]
    kept = {
        "head": "the first tokens",
        "tail": "the last tokens",
        "head+tail": f"the first {cut['head_tokens']} text tokens and the last "
        f"{cut['max_length'] - cut['prefix_tokens'] - cut['suffix_tokens'] - cut['head_tokens']}",
    }[strategy]
    labels = "\n".join(
        f"| {i} | `{config.id2label[i]}` | `{name}` |" for i, name in enumerate(config.label_names)
    )
    return (
        "## Model\n\n"
        f"- Base encoder: {_base_encoder(ledger.model)} ({encoder.get('model_type')}, "
        f"{encoder.get('num_hidden_layers')} layers, hidden size {encoder.get('hidden_size')}); "
        f"{ledger.parameters:,} parameters with the head.\n"
        "- Pooling: the mean of the encoder's last hidden states over the review's real tokens "
        "(masked mean pooling: padding never counts). Not the [CLS] token and not BERT's "
        "pooler, which the transformers classification heads use.\n"
        f"- Head: one linear layer, {encoder.get('hidden_size')} -> "
        f"{len(config.label_names)} classes; probabilities by softmax.\n"
        f"- Input: at most {cut['max_length']} tokens, special tokens included. A longer "
        f"review is cut as the run was trained ({strategy}): it keeps {kept}.\n\n"
        "Classes (`id2label` follows the Hugging Face convention of upper-case sentiment "
        "labels; `label_names` in config.json keeps the run's own names, which `imdb predict` "
        "prints):\n\n"
        "| id | id2label | run's name |\n| --- | --- | --- |\n"
        f"{labels}\n"
    )


def _card_data(ledger: Ledger) -> str:
    sizes = ledger.data.sizes
    listed = ", ".join(f"{split.replace('_', ' ')} {count:,}" for split, count in sizes.items())
    return (
        "## Data\n\n"
        f"- Data set: {ledger.dataset}\n"
        f"- Data set fingerprint: `{ledger.data.data_fingerprint}` (`imdb prepare`'s "
        "name for the reviews, the split and its options)\n"
        f"- Split seed: {ledger.data.split_seed}; reviews per split: {listed}\n"
    )


def _card_recipe(ledger: Ledger) -> str:
    config = ledger.config.to_dict()
    shown = (
        "epochs",
        "batch_size",
        "lr",
        "optimizer",
        "scheduler",
        "warmup_ratio",
        "weight_decay",
        "max_length",
        "truncation",
        "precision",
        "seed",
        "limit_train",
    )
    environment = ledger.environment
    if environment.precision and environment.precision != config["precision"]:
        config["precision"] = f"{config['precision']} ({environment.precision} where it ran)"
    rows = "\n".join(f"| {key} | {config[key]} |" for key in shown)
    return (
        "## Recipe\n\n"
        f"Trained by `imdb train` on {environment.device or '?'} in "
        f"{environment.precision or '?'}:\n\n"
        f"| setting | value |\n| --- | --- |\n{rows}\n"
    )


def _card_results(result: ExportResult, ledger: Ledger) -> str:
    test = ledger.test
    assert test is not None  # exportable_run checked it
    correct = round(test.acc * test.samples)
    low, high = wilson_interval(correct, test.samples)
    best = ledger.epoch(ledger.best_epoch) if ledger.best_epoch is not None else None
    lines = [
        "## Results\n",
        f"- Test accuracy: {test.acc:.4f} (95% Wilson interval {low:.4f}-{high:.4f}) on "
        f"{test.samples:,} test reviews, best epoch {ledger.best_epoch}"
        + (f" (validation accuracy {best.val_acc:.4f})" if best is not None else "")
        + ".",
    ]
    if result.onnx_difference is not None:
        lines.append(
            f"- ONNX fp32 ({result.written_graph} graph) vs torch: largest difference of a "
            f"class probability {result.onnx_difference:.1e} on {result.checked_reviews} test "
            "reviews."
        )
    if result.format == "onnx":
        lines += ["", *_card_onnx(result, ledger)]
    return "\n".join(lines) + "\n"


def _card_onnx(result: ExportResult, ledger: Ledger) -> list[str]:
    """Which graph and which quantization the model.onnx carries, and each one's accuracy."""
    lines = ["### The ONNX model", ""]
    if result.fusions is not None:
        lines.append(
            "- Graph: optimized. Exported by torch.onnx's TorchScript exporter with eager "
            "attention, then fused by onnxruntime's transformer optimizer: "
            f"{result.fusions.describe()}."
        )
    else:
        why = f" ({result.graph_note})" if result.graph_note else " (`--onnx-graph plain`)"
        lines.append(f"- Graph: plain, as torch.onnx's dynamo exporter wrote it{why}.")
    if result.int8 is not None:
        lines.append(f"- Quantization: int8, {result.int8.describe()} (onnxruntime).")
    else:
        lines.append("- Quantization: none (fp32 weights and activations).")
    if not result.accuracy:
        lines.append(f"- ONNX test accuracy {result.accuracy_note}.")
        return lines
    test = ledger.test
    assert test is not None  # exportable_run checked it
    lines += [
        "",
        f"Accuracy on the run's {result.test_reviews:,} test reviews, measured at export "
        "(onnxruntime, CPU):",
        "",
        "| model | test accuracy |",
        "| --- | --- |",
        f"| torch (the run's checkpoint) | {test.acc:.4f} |",
        *(
            f"| ONNX {name}, {result.written_graph} graph | {acc:.4f} |"
            for name, acc in result.accuracy.items()
        ),
    ]
    if "int8" in result.accuracy and "fp32" in result.accuracy:
        change = (result.accuracy["int8"] - result.accuracy["fp32"]) * 100
        lines.append(f"\nint8 minus fp32: {change:+.2f} accuracy points.")
    return lines


def _card_usage(result: ExportResult, config: Any) -> str:
    # The folder as `--out` named it: the snippets run from where the export was made.
    folder = str(result.out)
    name = json.dumps(folder)[1:-1]  # inside a Python string literal
    shell = shlex.quote(folder)
    cut = config.truncation
    predict = (
        f'```bash\nimdb predict {shell} --text "A slow start, but a wonderful last hour."\n'
        f"imdb predict {shell} --file reviews.csv --column review -o scored.csv\n```\n"
    )
    if result.format == "hf":
        return (
            "## How to use\n\n"
            "With transformers alone (no `imdb` needed; the model code is `modeling_imdb.py` "
            "in this folder, hence `trust_remote_code=True`):\n\n"
            "```python\nfrom transformers import pipeline\n\n"
            f'classify = pipeline("text-classification", model="{name}", '
            "trust_remote_code=True)\n"
            'classify(["A slow start, but a wonderful last hour."], top_k=None, batch_size=64)'
            "\n```\n\n"
            "```python\nimport torch\n"
            "from transformers import AutoModelForSequenceClassification, AutoTokenizer\n\n"
            f'model = AutoModelForSequenceClassification.from_pretrained("{name}", '
            "trust_remote_code=True)\n"
            f'tokenizer = AutoTokenizer.from_pretrained("{name}", trust_remote_code=True)\n'
            'batch = tokenizer(["Two hours I will never get back."], padding=True, '
            'return_tensors="pt")\n'
            "with torch.no_grad():\n"
            "    probs = model(**batch).logits.softmax(-1)\n```\n\n"
            "Give the model whole reviews, right-padded: it cuts each review longer than "
            f"{cut['max_length']} tokens itself, the way it was trained ({cut['strategy']}). "
            "The tokenizer has no maximum length for that reason, so `truncation=True` "
            "without a `max_length` changes nothing.\n\n"
            f"With imdb (reads config.json and the weights; runs no code from the folder):\n\n"
            f"{predict}"
        )
    head_call = (
        f"tokenizer(texts, truncation=True, max_length={cut['max_length']}, padding=True, "
        'return_tensors="np")'
    )
    return (
        "## How to use\n\n"
        "With onnxruntime (inputs `input_ids` and `attention_mask`, int64, any batch size and "
        "length; outputs `logits` and `pooled`):\n\n"
        "```python\nimport onnxruntime\nfrom transformers import AutoTokenizer\n\n"
        f'session = onnxruntime.InferenceSession("{name}/model.onnx")\n'
        f'tokenizer = AutoTokenizer.from_pretrained("{name}")\n'
        'texts = ["A slow start, but a wonderful last hour."]\n'
        + (
            f"batch = {head_call}\n"
            if cut["strategy"] == "head"
            else "batch = ...  # token ids cut as described below\n"
        )
        + 'logits, pooled = session.run(None, {"input_ids": batch["input_ids"], '
        '"attention_mask": batch["attention_mask"]})\n```\n\n'
        f"With imdb (encodes and cuts reviews exactly as the run was trained):\n\n{predict}"
    )


def _card_limits(result: ExportResult, config: Any) -> str:
    cut = config.truncation
    lines = ["## What it cannot reproduce\n"]
    if result.format == "hf":
        lines += [
            "- Truncation in the tokenizer with a `max_length`: it would cut the review "
            "before the model does"
            + (
                f", keeping its first tokens, not the {cut['strategy']} this model was trained on."
                if cut["strategy"] != "head"
                else f"; with `max_length={cut['max_length']}` the result is the same, with "
                "any other it is not."
            ),
            "- Left padding: the model expects padding on the right (the tokenizer's setting).",
            "- Text pairs: the model was trained on single reviews.",
        ]
    else:
        lines += [
            "- The graph takes token ids already cut to the model's length: it does not cut "
            f"longer reviews. {cut['strategy'].capitalize()} truncation to "
            f"{cut['max_length']} tokens is what the model was trained on"
            + (
                " (the tokenizer call above does exactly that)."
                if cut["strategy"] == "head"
                else f": keep the special tokens, the first {cut['head_tokens']} text tokens and "
                "the last of the rest; `imdb predict` does it for you."
            ),
        ]
        if result.fusions is not None:
            lines.append(
                "- Left padding: the fused attention reads each row's length from the mask "
                "and expects its padding on the right (the tokenizer's setting)."
            )
        if result.quantization:
            lines.append(
                "- int8 probabilities are close to, not equal to, the fp32 model's; see Results."
            )
    return "\n".join(lines) + "\n"


def _card_versions(result: ExportResult, ledger: Ledger) -> str:
    environment = ledger.environment
    exported_with = [
        f"imdb-cli {__version__}",
        f"torch {torch.__version__}",
        f"transformers {transformers.__version__}",
    ]
    if result.format == "onnx":
        import onnx
        import onnxruntime

        exported_with += [f"onnx {onnx.__version__}", f"onnxruntime {onnxruntime.__version__}"]
    return (
        "## Versions\n\n"
        f"- Trained with: python {environment.python or '?'}, torch "
        f"{environment.torch or '?'}, transformers {environment.transformers or '?'}\n"
        f"- Exported with: {', '.join(exported_with)} (python {platform.python_version()})\n"
    )
