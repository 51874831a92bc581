"""Building the faster variants of an exported model, each judged against fp32 on this machine.

(Which variants a model directory may hold and which one the scorer runs: :mod:`argvalues.variants`.)

- ``optimized``: Optimum's ``ORTOptimizer`` at level O2 (attention, GELU and layer-norm fusions).
- ``int8``: dynamic int8 of the smoothed fp32 graph, int8 weights in a 7-bit range that no CPU's
  int8 products saturate (:mod:`export.calibration`); one row per call, the calls side by side.
- ``int8-static``: static int8 with calibrated activation ranges (:mod:`export.calibration`); one row per
  call, the calls side by side (:class:`scorer.model.ScoringModel`).
- ``bf16``: OpenVINO running ``model.onnx`` at bfloat16 (:mod:`scorer.runtimes`); no file of its own.
- ``int8-openvino``: NNCF's int8 of ``model.onnx``, run by OpenVINO (:mod:`export.openvino_int8`);
  its recipes are tried fastest first, and the first whose labels hold is kept.
- ``fp16``: level O4 (O2 for GPU plus fp16 weights and activations; inputs and outputs stay fp32),
  for the CUDA provider.
- ``fp32-compact``: fp32 arithmetic on weights stored as fp16 (:mod:`export.compact`): half the
  file at fp32's speed, for shipping a model in little space.

Each variant is scored with the scorer's own code on every held-out argument of the run
(:mod:`export.heldout`) and judged against the fp32 ONNX model's labels on the same rows
(:mod:`export.judging`: label agreement, official F1 change with its paired-bootstrap interval).
Its speed is measured here too, side by side with fp32 (best of two passes, interleaved), and
recorded under this machine's signature: ``score`` then runs the fastest variant whose labels held
when it runs on the machine that measured, and falls back to an order by CPU features elsewhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from argvalues.digest import sha256_of
from argvalues.model_config import ScoringConfig
from argvalues.variants import (
    BF16,
    COMPACT,
    DEVICE_VARIANTS,
    DYNAMIC_INT8,
    FP32,
    OPENVINO_HINTS,
    OPENVINO_INT8,
    OPENVINO_VARIANTS,
    PAD_TO_MULTIPLE,
    STATIC_INT8,
    VARIANT_FILES,
    bf16_capable,
    installed,
    machine_signature,
    openvino_int8_capable,
)
from export.heldout import HeldOut
from export.judging import judge_variant


def make_optimized(model_dir: Path) -> dict:
    from optimum.onnxruntime import ORTOptimizer
    from optimum.onnxruntime.configuration import AutoOptimizationConfig

    ORTOptimizer.from_pretrained(model_dir).optimize(AutoOptimizationConfig.O2(), save_dir=model_dir,
                                                      file_suffix="optimized")
    return {"how": "Optimum ORTOptimizer, level O2 (CPU)"}


def make_fp16(model_dir: Path) -> dict:
    import onnxruntime
    from optimum.onnxruntime import ORTOptimizer

    onnxruntime.set_default_logger_severity(3)  # it probes the CUDA provider, which is noisy where there is none
    from optimum.onnxruntime.configuration import AutoOptimizationConfig

    ORTOptimizer.from_pretrained(model_dir).optimize(AutoOptimizationConfig.O4(), save_dir=model_dir, file_suffix="fp16")
    return {"how": "Optimum ORTOptimizer, level O4 (GPU fusions, fp16; fp32 inputs and outputs)"}


def make_compact(model_dir: Path) -> dict:
    from export.compact import make_compact

    return make_compact(model_dir)


MAKERS: dict[str, Callable[[Path], dict]] = {"optimized": make_optimized, "fp16": make_fp16,
                                             COMPACT: make_compact}


#: What ``argvalues export`` writes with no variant flag: the CPU's low-precision variants whose
#: labels do not depend on batch-mates, and fp16 for CUDA (each checked; ``score`` runs one only
#: where its labels held). OpenVINO's ones need OpenVINO (a base dependency where it has wheels) and NNCF for int8.
def default_variants() -> tuple[str, ...]:
    openvino_int8 = openvino_int8_capable() and installed("nncf")
    return ((DYNAMIC_INT8, STATIC_INT8) + ((BF16,) if bf16_capable() else ())
            + ((OPENVINO_INT8,) if openvino_int8 else ()) + ("fp16",))


#: Rows timed in the second, interleaved pass (the first pass times the whole held-out set).
TIMING_ROWS = 512


def recipe_count(name: str) -> int:
    """How many recipes a variant has (tried in turn until one's labels hold)."""
    if name == OPENVINO_INT8:
        from export.openvino_int8 import RECIPES

        return len(RECIPES)
    return 1


def _make(name: str, staging: Path, held_out: HeldOut, recipe: int = 0) -> dict:
    if name == OPENVINO_INT8:
        from export.openvino_int8 import make_openvino_int8

        return make_openvino_int8(staging, held_out.calibration, recipe)
    if name == STATIC_INT8:
        from export.calibration import make_static_int8

        return make_static_int8(staging, held_out.calibration)
    if name == DYNAMIC_INT8:
        from export.calibration import make_dynamic_int8

        return make_dynamic_int8(staging, held_out.calibration)
    if name == BF16:
        import openvino

        return {"how": f"OpenVINO {openvino.__version__} reading model.onnx, inference precision bf16, "
                       "batches of equal-length rows"}
    return MAKERS[name](staging)


def _timed(staging: Path, name: str, arguments: pd.DataFrame, device: str = "cpu",
           openvino_hint: str | None = None, warm: bool = False) -> tuple[np.ndarray, float]:
    """Probabilities and rows/s of one pass over ``arguments``; ``warm``: after an untimed pass over
    them all (OpenVINO prepares its kernels for each new input shape: its first pass over 512
    arguments ran at 0.6x-0.75x the second, measured)."""
    from scorer.model import ScoringModel

    model = ScoringModel(staging, device=device, variant=name, openvino_hint=openvino_hint,
                         pad_to_multiple=PAD_TO_MULTIPLE.get(name, 1))
    model.probabilities(arguments if warm else arguments.iloc[:8])  # first calls set up kernels and shapes
    started = time.perf_counter()
    probabilities = model.probabilities(arguments, batch_size=64)
    return probabilities, len(arguments) / (time.perf_counter() - started)


def build_variants(names: list[str], staging: Path, held_out: HeldOut, log: Callable[[str], None]) -> dict:
    """Make each variant in ``staging`` and judge it against fp32 on ``held_out``; the manifest's records."""
    from scorer.model import cuda_usable

    thresholds = np.asarray(ScoringConfig.load(staging).thresholds, dtype=np.float32)
    judged, machine = held_out.judged, machine_signature()
    log(f"checking variants on {held_out.source}")
    reference, fp32_speed = _timed(staging, FP32, judged)
    speeds = {FP32: [fp32_speed]}
    results = {FP32: {"file": VARIANT_FILES[FP32], "default_ok": True}}
    for name in names:
        started = time.perf_counter()
        device = "cuda" if name == "fp16" and cuda_usable() else "cpu"
        for recipe in range(recipe_count(name)):
            try:
                info = _make(name, staging, held_out, recipe)
            except Exception as error:
                if name != OPENVINO_INT8:
                    raise
                # a third-party quantizer (NNCF) that cannot take this graph: the export goes on without it
                reason = str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__
                log(f"variant {name}: not made ({reason})")
                info = None
                break
            info["file"] = VARIANT_FILES[name]
            if name in PAD_TO_MULTIPLE:  # judged (and timed) padded so: the scorer runs it so
                info["pad_to_multiple"] = PAD_TO_MULTIPLE[name]
            try:
                probabilities, speed = _timed(staging, name, judged, device)
                info.update(checked_on=device, held_out=held_out.source,
                            **judge_variant(reference, probabilities, thresholds, held_out.truth))
                if device == "cpu" and name in DEVICE_VARIANTS["cpu"]:
                    speeds[name] = [speed]
            except Exception as error:  # e.g. an fp16 graph the CPU provider cannot run: recorded, never picked
                info.update(checked_on=None, default_ok=False, check_error=str(error).splitlines()[0][:300])
            if info["default_ok"] or recipe + 1 == recipe_count(name):
                break
            held = f"{100 * info['label_agreement']:.2f}% of labels as fp32" if "label_agreement" in info else "not checked"
            log(f"variant {name}, recipe '{info['recipe']}': {held}, not picked; trying the next recipe")
        if info is None:
            (staging / VARIANT_FILES[name]).unlink(missing_ok=True)
            continue
        info["sha256"] = sha256_of(staging / info["file"])
        info["bytes"] = (staging / info["file"]).stat().st_size
        info["seconds"] = round(time.perf_counter() - started, 1)
        results[name] = info
        if info.get("checked_on"):
            f1 = (f", official F1 change {info['f1_change']:+.4f} (95% {info['f1_change_interval'][0]:+.4f} to "
                  f"{info['f1_change_interval'][1]:+.4f})" if "f1_change" in info else "")
            log(f"variant {name}: {100 * info['label_agreement']:.2f}% of labels as fp32{f1}, "
                f"{'picked when fastest' if info['default_ok'] else 'NOT picked by default'}")
        else:
            log(f"variant {name}: not checked here ({info['check_error']})")
    sample = judged.iloc[:TIMING_ROWS]
    for name in speeds:  # a second pass, interleaved (the machine may be shared), warm as a long run is
        if name in OPENVINO_VARIANTS:  # and OpenVINO's performance hints, side by side: the faster is recorded
            by_hint = {hint: _timed(staging, name, sample, openvino_hint=hint, warm=True)[1] for hint in OPENVINO_HINTS}
            fastest = max(by_hint, key=by_hint.get)
            results[name]["performance_hint"] = {machine: fastest}
            speeds[name].append(by_hint[fastest])
            log(f"variant {name}: OpenVINO's " + ", ".join(f"{hint} {speed:.0f}" for hint, speed in by_hint.items())
                + f" rows/s: runs {fastest} here")
        else:
            speeds[name].append(_timed(staging, name, sample, warm=True)[1])
    for name, measured in speeds.items():
        results[name]["rows_per_second"] = {machine: round(max(measured), 1)}
    log("rows/s on this machine: " + ", ".join(f"{name} {max(s):.0f}" for name, s in speeds.items()))
    return results


def scoring_entries(results: dict) -> dict:
    """What ``argvalues.json`` keeps of each variant: its file, whether its labels held, its speeds,
    static int8's weight format (the scorer does not pick int8 weights where their products saturate),
    and for OpenVINO's variants the performance hint measured fastest here and the token multiple rows
    were padded to when judged."""
    keys = ("file", "default_ok", "rows_per_second", "weights", "performance_hint", "pad_to_multiple")
    return {name: {key: info[key] for key in keys if key in info}
            for name, info in results.items()}
