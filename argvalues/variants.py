"""Model variants a model directory may hold, and which one the scorer runs (no torch here)."""

from __future__ import annotations

FP32 = "fp32"
VARIANT_FILES = {FP32: "model.onnx", "optimized": "model_optimized.onnx", "int8": "model_quantized.onnx",
                 "fp16": "model_fp16.onnx"}
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
