"""int8-openvino: NNCF's post-training int8 of ``model.onnx``, run by OpenVINO (:mod:`scorer.runtimes`).

NNCF (OpenVINO's own quantizer) writes a QDQ ONNX graph from the fp32 one with its transformer
recipe: SmoothQuant on the MatMuls' inputs, per-channel int8 weights, activation ranges calibrated
on arguments the model trained on, fast bias correction, and no quantizer on attention's
activation-by-activation products, softmax or layer norm. OpenVINO turns the QDQ pairs into int8
kernels (AVX512-VNNI, AMX-INT8).

On the default recipe's student (AMD EPYC, AVX512-VNNI + AVX512-BF16, 2,500 held-out training
arguments): 99.58% of labels as fp32's at 1.5x-1.6x OpenVINO's own bf16 on the same file; the
first encoder layer left unquantized: 99.66% at 1.3x; ONNX Runtime's static int8 of every MatMul
(the fastest int8 it has) held 97.6% of validation labels at 1.18x (benchmarks/README.md,
"Tried and not kept"). Export tries the recipes in :data:`RECIPES` in turn and keeps the first whose
labels hold (:mod:`export.build_variants`).

Calibration feeds hold rows of one token length each, unpadded: the ranges come from real tokens
alone (the scorer pads a row by up to 3 tokens, which attention's mask and the pooling leave out
of every real token's result), and no pad token widens a range.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from argvalues.variants import FP32, OPENVINO_INT8, PAD_TO_MULTIPLE, VARIANT_FILES, external_data_path, onnx_files

#: The quantization recipes, fastest first: (name, regular expressions of node names left unquantized).
RECIPES: list[tuple[str, list[str]]] = [
    ("every MatMul with weights", []),
    ("every MatMul with weights but the first encoder layer's", [r".*/layer\.0/.*"]),
]
#: Rows per calibration feed (all of one token length).
CALIBRATION_BATCH = 16


def make_openvino_int8(model_dir: Path, calibration: pd.DataFrame, recipe: int = 0) -> dict:
    """Write ``model_dir``'s int8-openvino model with recipe ``RECIPES[recipe]``, calibrated on
    ``calibration`` (arguments the model trained on)."""
    import nncf
    import onnx

    from scorer.model import ScoringModel

    nncf.set_log_level(logging.ERROR)
    name, unquantized = RECIPES[recipe]
    fp32 = ScoringModel(model_dir, device="cpu", variant=FP32, long_text="truncate")
    feeds = [batch for _, batch in fp32.prepare(calibration, CALIBRATION_BATCH, equal_length=True)]
    source = onnx.load(str(model_dir / VARIANT_FILES[FP32]))
    ignored = nncf.IgnoredScope(patterns=unquantized, validate=False) if unquantized else None
    quantized = nncf.quantize(source, nncf.Dataset(feeds), subset_size=len(feeds),
                              model_type=nncf.ModelType.TRANSFORMER, ignored_scope=ignored)
    target = model_dir / VARIANT_FILES[OPENVINO_INT8]
    large = len(onnx_files(model_dir / VARIANT_FILES[FP32])) > 1  # an ensemble past protobuf's 2 GB
    onnx.save(quantized, str(target), save_as_external_data=large,
              location=external_data_path(target).name if large else None)
    return {"how": f"NNCF {nncf.__version__} post-training int8 (transformer recipe: SmoothQuant, per-channel int8 "
                   f"weights, fast bias correction) of {name}, activation ranges calibrated on {len(calibration)} "
                   "training arguments; run by OpenVINO, the rest of the graph at f32, batches of rows of one width, "
                   f"each padded up to a multiple of {PAD_TO_MULTIPLE[OPENVINO_INT8]} tokens",
            "recipe": name, "unquantized": unquantized, "calibration_rows": len(calibration)}
