"""Faster variants of an exported model made with Optimum.

- ``optimized``: Optimum's ``ORTOptimizer`` at level O2 (attention, GELU and layer-norm fusions).
- ``int8``: Optimum's ``ORTQuantizer``, dynamic int8 with per-channel weights, for the instruction
  set this CPU has (AVX512-VNNI, AVX512, AVX2 or ARM64). It quantizes the plain fp32 graph: Optimum
  2.1 cannot quantize its own O2 graph (it needs onnxruntime's ``DefaultTensorType`` option, which
  ``ORTQuantizer`` does not pass on), and ONNX Runtime fuses the int8 graph itself when it loads.
- ``fp16``: level O4 (O2 for GPU plus fp16 weights and activations; inputs and outputs stay fp32),
  for the CUDA provider.

The static int8 variant (export/calibration.py) and OpenVINO's bf16 (scorer/runtimes.py) live
beside these; export/variant_checks.py checks every variant against fp32 on the run's held-out
arguments.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from pathlib import Path


from argvalues.variants import FP32, VARIANT_FILES, cpu_flags


def quantization_config():
    """Optimum's dynamic int8 config for the best instruction set this machine has."""
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    flags = cpu_flags()
    if platform.machine().lower() in ("arm64", "aarch64"):
        return "arm64", AutoQuantizationConfig.arm64(is_static=False, per_channel=True)
    if "avx512_vnni" in flags:
        return "avx512_vnni", AutoQuantizationConfig.avx512_vnni(is_static=False, per_channel=True)
    if "avx512f" in flags:
        return "avx512", AutoQuantizationConfig.avx512(is_static=False, per_channel=True)
    return "avx2", AutoQuantizationConfig.avx2(is_static=False, per_channel=True)


def make_optimized(model_dir: Path) -> dict:
    from optimum.onnxruntime import ORTOptimizer
    from optimum.onnxruntime.configuration import AutoOptimizationConfig

    ORTOptimizer.from_pretrained(model_dir).optimize(AutoOptimizationConfig.O2(), save_dir=model_dir,
                                                      file_suffix="optimized")
    return {"how": "Optimum ORTOptimizer, level O2 (CPU)"}


def make_int8(model_dir: Path) -> dict:
    from optimum.onnxruntime import ORTQuantizer

    instruction_set, config = quantization_config()
    ORTQuantizer.from_pretrained(model_dir, file_name=VARIANT_FILES[FP32]).quantize(config, save_dir=model_dir,
                                                                                    file_suffix="quantized")
    return {"how": f"Optimum ORTQuantizer, dynamic int8, per-channel weights, {instruction_set}",
            "instruction_set": instruction_set}


def make_fp16(model_dir: Path) -> dict:
    import onnxruntime
    from optimum.onnxruntime import ORTOptimizer

    onnxruntime.set_default_logger_severity(3)  # it probes the CUDA provider, which is noisy where there is none
    from optimum.onnxruntime.configuration import AutoOptimizationConfig

    ORTOptimizer.from_pretrained(model_dir).optimize(AutoOptimizationConfig.O4(), save_dir=model_dir, file_suffix="fp16")
    return {"how": "Optimum ORTOptimizer, level O4 (GPU fusions, fp16; fp32 inputs and outputs)"}


MAKERS: dict[str, Callable[[Path], dict]] = {"optimized": make_optimized, "int8": make_int8, "fp16": make_fp16}
