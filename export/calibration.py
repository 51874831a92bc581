"""The int8 variants made from measurements on calibration arguments: static int8 and dynamic int8.

Static int8: per-channel int8 weights and int8 activations whose ranges are fixed at export.

ONNX Runtime's ``quantize_static`` writes a QDQ graph (QuantizeLinear/DequantizeLinear pairs around
the MatMuls, which ONNX Runtime fuses into int8 kernels: AMX-INT8 or AVX512-VNNI where the CPU has
them). The activation ranges are calibrated once, here, on arguments the model trained on, fed
exactly as the scorer feeds them (same tokenizer, template and max length), one row per call so
that no pad token widens a range.

Unlike dynamic int8, whose activation scales follow each batch's own range (so a row's labels
depend on its batch-mates), every scale is a constant of the graph. ONNX Runtime's kernels still
round a row's last bits differently with the number of rows in its call, so the scorer runs it one
row per call, calls side by side (:class:`scorer.model.ScoringModel`).

Before quantizing, each quantized MatMul's input is smoothed (SmoothQuant, ``export/smoothing.py``):
the layer norms' outlier channels are divided down and the weights take the difference. The weights
are uint8 on a CPU whose uint8-by-int8 products saturate (AVX2 without VNNI), int8 elsewhere.

Dynamic int8 (:func:`make_dynamic_int8`): the same smoothing, then ONNX Runtime's ``quantize_dynamic``:
each call quantizes its activations to its own range (one row per call, so a row's range is its own),
and the weights are int8 in a 7-bit range, whose uint8-by-int8 products cannot saturate on any CPU:
its integer products are exact on AVX2 as on VNNI or AMX, so it runs as it was judged, wherever that was.
"""

from __future__ import annotations

import contextlib
import logging
import re
import tempfile
from pathlib import Path

import pandas as pd

from argvalues.variants import DYNAMIC_INT8, FP32, STATIC_INT8, VARIANT_FILES, int8_products_saturate, onnx_files
from export.smoothing import ALPHA, smooth_model

#: Only the MatMuls with weights are quantized: they are nearly all of the time; attention's
#: activation-by-activation products, layer norm, softmax, GELU, the mask and the classifier stay fp32.
QUANTIZED_OPERATORS = ["MatMul"]
#: Steps from a GELU's Erf to the MatMul it feeds (Div, Erf, Add, Mul, Mul in Optimum's export).
GELU_REACH = 4
#: The share of encoder layers, from the first, whose MatMuls all stay fp32 (2 of MiniLM's 6): the
#: first layers are where the embeddings' outlier activations stretch the uint8 ranges most. On the
#: default recipe's student (an AVX2 CPU, 31,520 test-set labels as fp32's, smoothed, uint8 weights):
#: the GELU outputs alone 99.49%, with the first third 99.69%, with the first half 99.68%; int8 1.49x,
#: 1.42x and 1.34x fp32 at one thread (unsmoothed int8 weights with the first half: 99.56%, 1.47x).
#: benchmarks/README.md, "Tried and not kept".
FP32_LAYER_SHARE = 1 / 3
#: Dynamic int8 keeps fewer MatMuls fp32 (each row quantized to its own range): those that read a GELU
#: and those of the first sixth of the layers (MiniLM's first). On the packaged model (AVX2, the 37,920
#: validation labels; one thread, side by side): the GELU readers alone 99.66% of labels as fp32's at
#: 1.30x fp32, with the first layer 99.74% at 1.27x, every MatMul 98.64% at 1.65x; static int8 1.07x.
DYNAMIC_FP32_LAYER_SHARE = 1 / 6
LAYER_INDEX = re.compile(r"/layer\.(\d+)/")


def after_gelu(model) -> list[str]:
    """The MatMuls that read a GELU's output (the feed-forward output projections).

    Their inputs are long-tailed and a uint8 range over them costs most of int8's accuracy: on a
    MiniLM model, validation labels as fp32's went from 97.4% to 99.0% when they stayed fp32
    (benchmarks/README.md, "AMD EPYC, AVX2 only").
    """
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    found = []
    frontier = [node for node in model.graph.node if node.op_type in ("Erf", "Gelu", "FastGelu", "BiasGelu")]
    for _ in range(GELU_REACH):
        following = []
        for node in frontier:
            for output in node.output:
                for consumer in consumers.get(output, []):
                    (found if consumer.op_type == "MatMul" else following).append(consumer)
        frontier = following
    return sorted({node.name for node in found})


def in_first_layers(model, share: float = FP32_LAYER_SHARE) -> list[str]:
    """The MatMuls of the encoder's first ``share`` of layers, rounded down (by the exporter's
    ``/layer.N/`` node names; none for a graph without them)."""
    layers = {node.name: int(index.group(1)) for node in model.graph.node
              if node.op_type == "MatMul" and (index := LAYER_INDEX.search(node.name))}
    count = int((max(layers.values()) + 1) * share) if layers else 0
    return sorted(name for name, layer in layers.items() if layer < count)


@contextlib.contextmanager
def quantizer_advice_muted():
    """ONNX Runtime's quantizers advise "pre-processing" on the root logger at every call; the
    advice is for convolution models and, in ``argvalues export``'s output, only noise."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        root.setLevel(level)


def feed_reader(feeds: list[dict]):
    """ONNX Runtime's calibration reader over prepared feeds (one row each)."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.rows = iter(feeds)

        def get_next(self):
            return next(self.rows, None)

    return Reader()


@contextlib.contextmanager
def smoothed_for_int8(model_dir: Path, calibration: pd.DataFrame, fp32_layer_share: float):
    """Yields ``(smoothed, feeds, kept_fp32)`` for quantizing ``model_dir``'s fp32 graph: the MatMuls
    kept fp32 (those that read a GELU, and those of the first ``fp32_layer_share`` of the layers),
    ``calibration`` fed as the scorer feeds it (one row per call), and a scratch copy of the graph
    with every other MatMul's input smoothed (SmoothQuant) over those feeds."""
    import onnx

    from scorer.model import ScoringModel

    fp32 = ScoringModel(model_dir, device="cpu", variant=FP32, long_text="truncate")
    feeds = [batch for _, batch in fp32.prepare(calibration, batch_size=1)]
    source = model_dir / VARIANT_FILES[FP32]
    graph = onnx.load(str(source), load_external_data=False)
    kept_fp32 = sorted(set(after_gelu(graph)) | set(in_first_layers(graph, fp32_layer_share)))
    with tempfile.TemporaryDirectory(dir=model_dir) as scratch:
        smoothed = Path(scratch) / VARIANT_FILES[FP32]
        smooth_model(source, smoothed, feeds, skip=frozenset(kept_fp32))
        yield smoothed, feeds, kept_fp32


def make_static_int8(model_dir: Path, calibration: pd.DataFrame) -> dict:
    """Write ``model_dir``'s static int8 model, calibrated on ``calibration`` (arguments): the fp32
    graph smoothed (SmoothQuant) where its MatMuls are quantized, then quantized."""
    # AVX2's uint8-by-int8 product (vpmaddubsw) adds pairs of products in int16 and saturates there,
    # which smoothed weights reach: on the packaged model (AVX2, 31,520 test-set labels) smoothing
    # took labels as fp32's from 99.36% to 99.63% with uint8 weights, but from 99.39% down to 99.20%
    # with int8 ones. uint8 by uint8 does not saturate, at about 0.9x the speed; VNNI and AMX
    # multiply uint8 by int8 exactly, and fast.
    weights = "uint8" if int8_products_saturate() else "int8"
    with smoothed_for_int8(model_dir, calibration, FP32_LAYER_SHARE) as (smoothed, feeds, kept_fp32):
        quantize_static_int8(smoothed, model_dir / VARIANT_FILES[STATIC_INT8], feeds, kept_fp32,
                             weights_unsigned=weights == "uint8")
    return {"how": f"ONNX Runtime quantize_static: QDQ, per-channel {weights} weights, uint8 activations with MinMax "
                   f"ranges calibrated on {len(calibration)} training arguments, each quantized MatMul's input "
                   f"smoothed first (SmoothQuant, alpha {ALPHA}); the MatMuls with weights, except the "
                   f"{len(kept_fp32)} that read a GELU's output or lie in the first {FP32_LAYER_SHARE:.0%} of the "
                   "encoder's layers",
            "calibration_rows": len(calibration), "kept_fp32": kept_fp32, "weights": weights,
            "smoothing_alpha": ALPHA}


def make_dynamic_int8(model_dir: Path, calibration: pd.DataFrame) -> dict:
    """Write ``model_dir``'s dynamic int8 model: the fp32 graph smoothed (SmoothQuant, ranges measured
    on ``calibration``) where its MatMuls are quantized, then quantized with int8 weights in a 7-bit
    range, the activations at each call's own range."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with smoothed_for_int8(model_dir, calibration, DYNAMIC_FP32_LAYER_SHARE) as (smoothed, _, kept_fp32):
        # reduce_range: weights in [-64, 64], so that AVX2's vpmaddubsw, which adds two uint8-by-int8
        # products in int16, stays below 2**15 (255 * 64 * 2): the products are exact on every CPU.
        # Full-range int8 weights saturate there (98.28% of labels against 98.64%, every MatMul quantized).
        with quantizer_advice_muted():
            quantize_dynamic(str(smoothed), str(model_dir / VARIANT_FILES[DYNAMIC_INT8]), weight_type=QuantType.QInt8,
                             per_channel=True, reduce_range=True, op_types_to_quantize=QUANTIZED_OPERATORS,
                             nodes_to_exclude=kept_fp32, extra_options={"MatMulConstBOnly": True},
                             use_external_data_format=len(onnx_files(model_dir / VARIANT_FILES[FP32])) > 1)
    return {"how": f"ONNX Runtime quantize_dynamic: per-channel int8 weights in a 7-bit range (exact on every "
                   f"CPU), uint8 activations at each call's own range (one row per call), each quantized "
                   f"MatMul's input smoothed first (SmoothQuant, alpha {ALPHA}, ranges from {len(calibration)} "
                   f"training arguments); the MatMuls with weights, except the {len(kept_fp32)} that read a "
                   f"GELU's output or lie in the first {DYNAMIC_FP32_LAYER_SHARE:.0%} of the encoder's layers",
            "calibration_rows": len(calibration), "kept_fp32": kept_fp32, "weights": "int8-7bit",
            "smoothing_alpha": ALPHA}


def quantize_static_int8(source: Path, target: Path, feeds: list[dict], kept_fp32: list[str],
                         weights_unsigned: bool = False) -> None:
    """``source``'s MatMuls with weights, but for the nodes ``kept_fp32``, as QDQ int8 (per-channel
    weights, uint8 activations with MinMax ranges from ``feeds``) in ``target``; ``weights_unsigned``:
    uint8 weights, for CPUs whose uint8-by-int8 products saturate."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    with quantizer_advice_muted():
        quantize_static(str(source), str(target), feed_reader(feeds),
                        quant_format=QuantFormat.QDQ, op_types_to_quantize=QUANTIZED_OPERATORS, per_channel=True,
                        activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QUInt8 if weights_unsigned else QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=kept_fp32,
                        extra_options={"MatMulConstBOnly": True},
                        use_external_data_format=len(onnx_files(source)) > 1)
