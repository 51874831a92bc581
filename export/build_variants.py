"""Building the faster variants of an exported model with Optimum, each checked against PyTorch.

(Which variants a model directory may hold and which one the scorer runs: :mod:`argvalues.variants`.)

- ``optimized``: Optimum's ``ORTOptimizer`` at level O2 (attention, GELU and layer-norm fusions).
- ``int8``: Optimum's ``ORTQuantizer``, dynamic int8 with per-channel weights, for the instruction
  set this CPU has (AVX512-VNNI, AVX512, AVX2 or ARM64). It quantizes the plain fp32 graph: Optimum
  2.1 cannot quantize its own O2 graph (it needs onnxruntime's ``DefaultTensorType`` option, which
  ``ORTQuantizer`` does not pass on), and ONNX Runtime fuses the int8 graph itself when it loads.
- ``fp16``: level O4 (O2 for GPU plus fp16 weights and activations; inputs and outputs stay fp32),
  for the CUDA provider.

Every variant is scored with the scorer's own code on the checkpoint's held-out parity sample and
compared with PyTorch fp32: largest probability difference, labels that flip, and the official F1
on the sample's labels. A variant whose F1 moves more than :data:`MAX_F1_DRIFT` is recorded but
not picked by default.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from argvalues.digest import sha256_of
from argvalues.metrics import apply_thresholds, official_scores
from argvalues.model_config import ScoringConfig
from argvalues.variants import FP32, MAX_F1_DRIFT, VARIANT_FILES
from trainer.run_dir import CheckpointDir


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


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


def compare_with_pytorch(reference: np.ndarray, candidate: np.ndarray, thresholds: np.ndarray,
                         truth: np.ndarray | None) -> dict:
    """How far a variant's probabilities are from PyTorch fp32's, and what that does to labels and F1."""
    flips = apply_thresholds(reference, thresholds) != apply_thresholds(candidate, thresholds)
    result = {"max_abs_difference": float(np.abs(reference - candidate).max()), "label_flips": int(flips.sum()),
              "labels": int(flips.size)}
    if truth is not None and truth.any():
        f1_reference = official_scores(truth, apply_thresholds(reference, thresholds)).f1
        f1_candidate = official_scores(truth, apply_thresholds(candidate, thresholds)).f1
        result.update(f1_pytorch=f1_reference, f1=f1_candidate, f1_drift=abs(f1_candidate - f1_reference))
    drift = result.get("f1_drift", 0.0 if not result["label_flips"] else 1.0)
    result["default_ok"] = bool(drift <= MAX_F1_DRIFT)
    return result


def build_variants(names: list[str], checkpoint: CheckpointDir, staging: Path, arguments: pd.DataFrame,
                   torch_probabilities: np.ndarray, log: Callable[[str], None]) -> dict:
    """Make each requested variant in ``staging`` and check it against PyTorch fp32 on the parity sample."""
    from scorer.model import ScoringModel, cuda_usable

    thresholds = np.asarray(ScoringConfig.load(staging).thresholds, dtype=np.float32)
    truth = checkpoint.parity_truth(arguments)
    results = {}
    for name in names:
        started = time.perf_counter()
        info = MAKERS[name](staging)
        info["file"] = VARIANT_FILES[name]
        device = "cuda" if name == "fp16" and cuda_usable() else "cpu"
        try:
            probabilities = ScoringModel(staging, device=device, variant=name).probabilities(arguments, batch_size=16)
            info.update(checked_on=device, rows=len(arguments),
                        **compare_with_pytorch(torch_probabilities, probabilities, thresholds, truth))
        except Exception as error:  # e.g. an fp16 graph the CPU provider cannot run: recorded, never picked
            info.update(checked_on=None, default_ok=False, check_error=str(error).splitlines()[0][:300])
        info["sha256"] = sha256_of(staging / info["file"])
        info["bytes"] = (staging / info["file"]).stat().st_size
        info["seconds"] = round(time.perf_counter() - started, 1)
        results[name] = info
        drift = f", official F1 {info['f1']:.4f} vs PyTorch {info['f1_pytorch']:.4f}" if "f1" in info else ""
        log(f"variant {name}: " + (f"largest difference {info['max_abs_difference']:.1e}{drift}, "
                                   f"{'picked by default' if info['default_ok'] else 'NOT picked by default'}"
                                   if info.get("checked_on") else f"not checked here ({info['check_error']})"))
    return results
