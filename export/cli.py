"""``argvalues export``: a thin shell over :func:`export.onnx.export_model`."""

from __future__ import annotations

import click

from argvalues.cli_support import Command, log, user_errors
from export.onnx import DEFAULT_ATOL, DEFAULT_OUTPUT


@click.command(cls=Command)
@click.argument("source", metavar="RUN_OR_CHECKPOINT", type=click.Path())
@click.option("--output", default=DEFAULT_OUTPUT, show_default=True, type=click.Path(file_okay=False),
              help="Model directory to write; 'score' reads ./argvalues-model by default.")
@click.option("--atol", type=float, default=DEFAULT_ATOL, show_default=True,
              help="Largest probability difference allowed between ONNX and PyTorch.")
@click.option("--opset", type=int, default=None, help="ONNX opset (default: Optimum's choice).")
@click.option("--optimize", is_flag=True, help="Also write an O2-optimized graph (Optimum ORTOptimizer: fused "
                                                "attention, GELU and layer norm).")
@click.option("--quantize", is_flag=True, help="Also write a dynamic int8 model (ONNX Runtime, smoothed, int8 "
                                                "weights in a 7-bit range, whose products are exact on every CPU; "
                                                "one row per call).")
@click.option("--fp16", is_flag=True, help="Also write an fp16 model for the CUDA provider (Optimum O4).")
@click.option("--static-int8", is_flag=True, help="Also write a static int8 model (ONNX Runtime QDQ, activation "
                                                   "ranges calibrated on the run's training arguments; fixed scales, so "
                                                   "one row per call runs side by side with others).")
@click.option("--bf16", is_flag=True, help="Also check OpenVINO's bf16 on model.onnx (needs OpenVINO "
                                            "and a CPU with AMX-BF16 or AVX512-BF16).")
@click.option("--openvino-int8", is_flag=True, help="Also write int8-openvino: NNCF's int8 of model.onnx, run by "
                                                     "OpenVINO (needs OpenVINO and a CPU with VNNI or AMX).")
@click.option("--compact", is_flag=True, help="Also write fp32-compact: fp32 arithmetic on weights stored as fp16, "
                                               "half the file at fp32's speed (for shipping a model in little space).")
@click.option("--fp32-only", is_flag=True, help="Write the fp32 model only (no variant, no variant checks).")
@click.option("--ensemble", is_flag=True,
              help="Export all k fold models of the run as one ONNX model that outputs the mean of their "
                   "probabilities (thresholds: the run's, chosen out of fold). 'score' works unchanged.")
@click.option("--join", "join", multiple=True, type=click.Path(file_okay=False), metavar="RUN",
              help="With --ensemble: add the fold models of another run on the same data, template and base "
                   "model (another --seed, say); thresholds are then chosen on all the runs' out-of-fold "
                   "predictions together. Repeatable.")
@user_errors
def export(source, output, atol, opset, optimize, quantize, fp16, static_int8, bf16, openvino_int8, compact, fp32_only,
           ensemble, join):
    """Export a run's best checkpoint (or a checkpoint directory) to a self-contained ONNX model.

    The ONNX model is checked against PyTorch on held-out arguments; beyond --atol the export
    fails and nothing is written. With no variant flag it also writes the variants that can run
    faster here (dynamic and static int8; with OpenVINO, its int8 on a CPU with VNNI or AMX and
    its bf16 on one with AMX-BF16 or AVX512-BF16; fp16 for CUDA).
    Each variant is judged against fp32 on every argument the run held out from the checkpoint:
    'score' runs the fastest (as measured here) whose labels agree with fp32's on at least 99.5%
    and whose official F1 change's 95% interval stays above -0.005. The manifest records it all.
    """
    from export.build_variants import default_variants
    from export.onnx import ExportOptions, export_model

    chosen = tuple(name for name, wanted in (("optimized", optimize), ("int8", quantize), ("int8-static", static_int8),
                                             ("bf16", bf16), ("int8-openvino", openvino_int8), ("fp16", fp16),
                                             ("fp32-compact", compact)) if wanted)
    if fp32_only and chosen:
        raise click.UsageError("--fp32-only writes no variant: leave out the variant flags")
    if not chosen and not fp32_only:
        chosen = default_variants()
    options = ExportOptions(atol=atol, opset=opset, variants=chosen, ensemble=ensemble, join=join)
    export_model(source, output, options, log=log)
