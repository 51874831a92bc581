"""Model variants a model directory may hold, and which one the scorer runs (no torch here)."""

from __future__ import annotations

from pathlib import Path

FP32 = "fp32"
VARIANT_FILES = {FP32: "model.onnx", "optimized": "model_optimized.onnx", "int8": "model_quantized.onnx",
                 "fp16": "model_fp16.onnx"}
#: Tensors of a model over protobuf's 2 GB limit (an ensemble of many or large members) live in one
#: file beside it, named after it: model.onnx -> model.onnx.data (what `export --ensemble` and
#: ONNX Runtime's optimizer write), or model.onnx_data (what Optimum's exporter writes).
EXTERNAL_DATA_SUFFIXES = (".data", "_data")


def external_data_path(onnx_path: Path) -> Path:
    """Where ``export --ensemble`` puts the tensors of a large model."""
    return onnx_path.with_name(onnx_path.name + EXTERNAL_DATA_SUFFIXES[0])


def onnx_files(onnx_path: Path) -> list[Path]:
    """The files one ONNX model is made of: the graph, and its external tensors when it has them."""
    data = [onnx_path.with_name(onnx_path.name + suffix) for suffix in EXTERNAL_DATA_SUFFIXES]
    return [onnx_path] + [path for path in data if path.is_file()]


#: Preference order when the scorer picks a variant for a provider.
PREFERENCE = {"cpu": ["int8", "optimized", FP32], "cuda": ["fp16", "optimized", FP32]}
#: A variant whose official F1 on the export sample moves more than this is not picked by default.
MAX_F1_DRIFT = 0.005


def pick_variant(variants: dict, provider: str, requested: str = "auto") -> str:
    """The variant to run: ``requested``, or the fastest one for the provider that passed its check."""
    if requested != "auto":
        return requested
    device = "cuda" if provider.startswith("CUDA") else "cpu"
    for name in PREFERENCE[device]:
        info = variants.get(name)
        if name == FP32 or (info and info.get("default_ok")):
            return name
    return FP32
