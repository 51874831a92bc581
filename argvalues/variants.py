"""Model variants a model directory may hold, and which one the scorer runs (no torch here).

A variant is an ONNX file and the runtime that runs it: ``bf16`` is OpenVINO running ``model.onnx``
itself at bfloat16 (AMX or AVX512-BF16), ``int8-openvino`` OpenVINO running NNCF's int8 QDQ file,
every other variant ONNX Runtime on its own file.
``fp32-compact`` is fp32 arithmetic on weights stored as fp16 (half the file: the packaged model).
"""

from __future__ import annotations

import hashlib
import os
import platform
from pathlib import Path

from argvalues.errors import ModelDirError

FP32 = "fp32"
DYNAMIC_INT8 = "int8"
STATIC_INT8 = "int8-static"
BF16 = "bf16"
OPENVINO_INT8 = "int8-openvino"
COMPACT = "fp32-compact"
VARIANT_FILES = {FP32: "model.onnx", "optimized": "model_optimized.onnx", DYNAMIC_INT8: "model_quantized.onnx",
                 STATIC_INT8: "model_static_int8.onnx", BF16: "model.onnx", "fp16": "model_fp16.onnx",
                 COMPACT: "model_compact.onnx", OPENVINO_INT8: "model_int8_openvino.onnx"}
#: Variants run by OpenVINO (a base dependency where it publishes wheels); the rest by ONNX Runtime.
OPENVINO_VARIANTS = {BF16, OPENVINO_INT8}
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


#: Preference order when the scorer picks a variant for a provider on a machine the export did not
#: measure (see :func:`pick_variant`; :func:`preference` puts dynamic int8 first where int8 products
#: saturate).
#: OpenVINO's int8 first: 1.4x-1.6x OpenVINO's own bf16 on an AVX512-VNNI + AVX512-BF16 CPU
#: (benchmarks/README.md, "Scoring speed"). The compact file runs at fp32's speed: it comes last, for
#: directories without model.onnx.
PREFERENCE = {"cpu": [OPENVINO_INT8, BF16, STATIC_INT8, DYNAMIC_INT8, "optimized", FP32, COMPACT],
              "cuda": ["fp16", "optimized", FP32, COMPACT]}
#: The variants each device can run at all (fp16 needs CUDA; the rest run on the CPU provider).
DEVICE_VARIANTS = {"cpu": [FP32, "optimized", DYNAMIC_INT8, STATIC_INT8, BF16, OPENVINO_INT8, COMPACT],
                   "cuda": [FP32, "optimized", "fp16", COMPACT]}
#: OpenVINO's performance hints: export times its variants with each, and the scorer runs the one
#: measured fastest on this machine, else the first. Measured (AMD EPYC, 2 cores, int8-openvino):
#: LATENCY (one stream, both cores on each call) 1.09x THROUGHPUT (two one-thread streams), with
#: identical results (benchmarks/README.md, "Scoring speed"); with rows padded (below) the two
#: measured within 10% of each other either way, run to run.
OPENVINO_HINTS = ("THROUGHPUT", "LATENCY")
#: Token widths OpenVINO's variants pad each row up to a multiple of (batches still hold rows of one
#: width only, so a row's result does not depend on its batch-mates). OpenVINO prepares its kernels
#: for every new input shape (about 12 ms each, measured); widths in steps of 4 cut the shapes of
#: 5,688 validation arguments from 127 to 40, and a run of 28,440 shuffled ones in chunks of 8,192
#: from 400 to 127: 1.13x and 1.07x faster, for at most 3 padded tokens a row, every label the
#: same (benchmarks/README.md, "Scoring speed"; 2 and 8 tokens gained less, 16 nothing). Export
#: judges the variant padded so and records the multiple; a directory without it runs unpadded, as
#: it was judged.
PAD_TO_MULTIPLE = {OPENVINO_INT8: 4}
#: A variant whose official F1 on the held-out arguments may have moved more than this is not picked by default.
MAX_F1_DRIFT = 0.005


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


#: The instruction-set extensions that decide which variant runs fastest.
SPEED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile")


def machine_signature() -> str:
    """What a speed measurement holds for: CPU model, its speed-relevant flags and the cores we may use."""
    flags = sorted(cpu_flags() & set(SPEED_FLAGS))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    text = f"{cpu_name()}|{' '.join(flags)}|{cores}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


#: CPUs whose uint8-by-int8 dot products accumulate in int32 exactly (VNNI, AMX). AVX2's
#: ``vpmaddubsw`` adds pairs of products in int16 and saturates there.
EXACT_U8S8_FLAGS = {"avx512_vnni", "avx_vnni", "amx_int8"}


def int8_products_saturate(flags: set[str] | None = None) -> bool:
    """Whether this CPU's uint8-by-int8 products can saturate (no VNNI or AMX): static int8 with
    int8 weights then computes other labels than the ones judged on a CPU that has them."""
    return not (cpu_flags() if flags is None else flags) & EXACT_U8S8_FLAGS


def installed(package: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(package) is not None


def bf16_capable() -> bool:
    """A CPU with bfloat16 arithmetic (AMX-BF16 or AVX512-BF16), and OpenVINO installed to use it."""
    return bool(cpu_flags() & {"amx_bf16", "avx512_bf16"}) and installed("openvino")


def openvino_int8_capable() -> bool:
    """OpenVINO installed, on a CPU that multiplies uint8 by int8 exactly (VNNI or AMX), where the
    int8-openvino variant computes the labels it was judged on."""
    return not int8_products_saturate() and installed("openvino")


def usable_variants(available: set[str]) -> set[str]:
    """Of the variants a directory holds, those this process and CPU can run as judged."""
    usable = set(available)
    if not bf16_capable():
        usable.discard(BF16)
    if not openvino_int8_capable():
        usable.discard(OPENVINO_INT8)
    return usable


def performance_hint(info: dict | None, machine: str | None = None) -> str:
    """The performance hint an OpenVINO variant runs with: the fastest export measured on this machine."""
    measured = (info or {}).get("performance_hint") or {}
    return measured.get(machine or machine_signature(), OPENVINO_HINTS[0])


def pad_multiple(info: dict | None) -> int:
    """The multiple of tokens a variant's rows are padded up to, as export judged it (1: unpadded)."""
    value = (info or {}).get("pad_to_multiple", 1)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelDirError(f"argvalues.json: a variant's pad_to_multiple must be a whole number from 1, got {value!r}")
    return value


def preference(device: str, flags: set[str] | None = None) -> list[str]:
    """:data:`PREFERENCE` for ``device`` on this CPU. Without VNNI or AMX, dynamic int8 (7-bit weights,
    exact there) before static int8 (uint8 weights, more of the graph kept fp32): 1.28x against 1.07x
    fp32's speed on the packaged model (AVX2, benchmarks/README.md, "AMD EPYC, AVX2 only"). With VNNI
    or AMX static int8 stays first: its int8 weights are exact there."""
    order = list(PREFERENCE[device])
    if device == "cpu" and int8_products_saturate(flags):
        order.remove(DYNAMIC_INT8)
        order.insert(order.index(STATIC_INT8), DYNAMIC_INT8)
    return order


def pick_variant(variants: dict, provider: str, requested: str = "auto", machine: str | None = None,
                 available: set[str] | None = None) -> str:
    """The variant to run: ``requested``, or the fastest one for the provider whose labels held at export.

    Fastest by the export's own measurement when it was made on this machine (same CPU, flags and
    cores); elsewhere by :func:`preference`. ``available``: variants this process can run (``bf16``
    needs OpenVINO and a bfloat16 CPU) and the model directory holds; default all.
    """
    if requested != "auto":
        return requested
    device = "cuda" if provider.startswith("CUDA") else "cpu"
    usable = [name for name in DEVICE_VARIANTS[device]
              if (name == FP32 or (variants.get(name) or {}).get("default_ok"))
              and (available is None or name in available)]
    if FP32 in usable and COMPACT in usable:  # the same arithmetic as fp32 on rounded weights: never the better pick
        usable.remove(COMPACT)
    if not usable:  # a directory without model.onnx that holds only variants export did not pick: run those
        # (on CUDA too: the packaged model ships int8 alone; ONNX Runtime runs what CUDA cannot on the CPU)
        return next((name for name in preference(device) + preference("cpu") if name in available), FP32)
    machine = machine or machine_signature()
    speeds = {name: (variants.get(name) or {}).get("rows_per_second", {}) for name in usable}
    if device == "cpu" and all(isinstance(s, dict) and s.get(machine) for s in speeds.values()):
        return max(usable, key=lambda name: speeds[name][machine])
    for name in preference(device):
        if name in usable:
            return name
    return FP32
