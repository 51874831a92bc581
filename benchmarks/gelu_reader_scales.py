"""Whether finer activation scales would let the GELU readers run in int8: a PyTorch simulation.

    .venv/bin/python benchmarks/gelu_reader_scales.py CHECKPOINT [--rows 1500] [--data ../shared/data/valueeval23]

The inputs of the MatMuls that read a GELU's output (each layer's feed-forward output) are
fake-quantized in layers 1-5, with their weights per channel in a 7-bit range (as export's dynamic
int8 quantizes the others); every other MatMul stays fp32. Ways of scaling the activations:
one uint8 range per row (what dynamic int8 one row per call does), one per token (asymmetric and
symmetric), and the channels of largest range (measured on the first 256 training arguments) kept
fp32. Prints, for the last --rows training arguments read one at a time through the checkpoint's
template, the share of labels (threshold 0.5) as the fp32 checkpoint's and the largest probability
difference.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from argvalues.contract import read_arguments  # noqa: E402
from argvalues.model_config import ScoringConfig  # noqa: E402
from argvalues.variants import SPEED_FLAGS, cpu_flags, cpu_name  # noqa: E402
from trainer.modeling import load_classifier  # noqa: E402

QUANTIZED_LAYERS = range(1, 6)


def asymmetric(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    low = torch.clamp(x.amin(dim=dims, keepdim=True), max=0)
    high = torch.clamp(x.amax(dim=dims, keepdim=True), min=0)
    scale = torch.where(high > low, (high - low) / 255, torch.ones_like(high))
    zero = torch.round(-low / scale)
    return (torch.clamp(torch.round(x / scale) + zero, 0, 255) - zero) * scale


def symmetric(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    scale = x.abs().amax(dim=dims, keepdim=True) / 127
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return torch.clamp(torch.round(x / scale), -127, 127) * scale


def seven_bit_weights(weight: torch.Tensor) -> torch.Tensor:
    scale = weight.abs().amax(dim=1, keepdim=True) / 64
    return torch.round(weight / scale) * scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--rows", type=int, default=1500)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/valueeval23"))
    args = parser.parse_args()
    found = sorted(cpu_flags() & set(SPEED_FLAGS))
    print("CPU:", cpu_name() + ";", "flags:", " ".join(found) or "none")
    model = load_classifier(args.checkpoint).eval()
    scoring = ScoringConfig.load(args.checkpoint)
    tokenizer = Tokenizer.from_file(str(Path(args.checkpoint) / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(scoring.max_length)
    rows = read_arguments(args.data / "arguments-training.tsv")

    def encoded(part):
        texts, pairs = scoring.template.render(part)
        return tokenizer.encode_batch(list(zip(texts, pairs)) if pairs else texts)

    calibration, judged = encoded(rows.iloc[:256]), encoded(rows.iloc[-args.rows:])
    readers = [m for n, m in model.named_modules() if n.endswith("output.dense") and "attention" not in n]
    weights = [reader.weight.data.clone() for reader in readers]

    def probabilities(encodings) -> np.ndarray:
        out = []
        with torch.no_grad():
            for e in encodings:
                ids = torch.tensor([e.ids])
                result = model(input_ids=ids, attention_mask=torch.ones_like(ids),
                               token_type_ids=torch.tensor([e.type_ids]))
                out.append(torch.sigmoid(result.logits if hasattr(result, "logits") else result[0])[0].numpy())
        return np.array(out)

    ranges: dict[int, torch.Tensor] = {}

    def record(index):
        def hook(module, inputs):
            largest = inputs[0].abs().amax(dim=(0, 1))
            ranges[index] = torch.maximum(ranges.get(index, largest), largest)
        return hook

    hooks = [reader.register_forward_pre_hook(record(i)) for i, reader in enumerate(readers)]
    probabilities(calibration)
    for hook in hooks:
        hook.remove()
    reference = probabilities(judged)

    def trial(name: str, quantize, kept_channels: int = 0) -> None:
        hooks = []
        for index in QUANTIZED_LAYERS:
            readers[index].weight.data = seven_bit_weights(weights[index])
            kept = torch.zeros(readers[index].in_features, dtype=torch.bool)
            if kept_channels:
                kept[ranges[index].topk(kept_channels).indices] = True

            def hook(module, inputs, kept=kept):
                x = inputs[0]
                return (torch.where(kept, x, quantize(torch.where(kept, torch.zeros_like(x), x))),)
            hooks.append(readers[index].register_forward_pre_hook(hook))
        result = probabilities(judged)
        for hook in hooks:
            hook.remove()
        for reader, weight in zip(readers, weights):
            reader.weight.data = weight.clone()
        agreement = ((result >= 0.5) == (reference >= 0.5)).mean()
        print(f"{name}: {agreement:.2%} of labels as fp32's, largest |dp| {np.abs(result - reference).max():.3f}",
              flush=True)

    trial("one range per row", lambda x: asymmetric(x, (0, 1)))
    trial("one range per token", lambda x: asymmetric(x, (2,)))
    trial("one range per token, symmetric", lambda x: symmetric(x, (2,)))
    for kept in (4, 16, 64):
        trial(f"one range per row, the {kept} widest channels fp32", lambda x: asymmetric(x, (0, 1)), kept)
        trial(f"one range per token, the {kept} widest channels fp32", lambda x: asymmetric(x, (2,)), kept)


if __name__ == "__main__":
    main()
