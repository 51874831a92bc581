"""``argvalues export``: a thin shell over :func:`export.onnx.export_model`."""

from __future__ import annotations

import click

from argvalues.cli_support import log, user_errors
from export.onnx import DEFAULT_ATOL, DEFAULT_OUTPUT


@click.command()
@click.argument("source", metavar="RUN_OR_CHECKPOINT", type=click.Path())
@click.option("--output", default=DEFAULT_OUTPUT, show_default=True, type=click.Path(file_okay=False),
              help="Model directory to write; 'score' reads ./argvalues-model by default.")
@click.option("--atol", type=float, default=DEFAULT_ATOL, show_default=True,
              help="Largest probability difference allowed between ONNX and PyTorch.")
@click.option("--opset", type=int, default=None, help="ONNX opset (default: Optimum's choice).")
@click.option("--optimize", is_flag=True, help="Also write an O2-optimized graph (Optimum ORTOptimizer: fused "
                                                "attention, GELU and layer norm).")
@click.option("--quantize", is_flag=True, help="Also write a dynamic int8 model for this CPU's instruction set "
                                                "(Optimum ORTQuantizer, per-channel weights).")
@click.option("--fp16", is_flag=True, help="Also write an fp16 model for the CUDA provider (Optimum O4).")
@click.option("--ensemble", is_flag=True,
              help="Export all k fold models of the run as one ONNX model that outputs the mean of their "
                   "probabilities (thresholds: the run's, chosen out of fold). 'score' works unchanged.")
@click.option("--join", "join", multiple=True, type=click.Path(file_okay=False), metavar="RUN",
              help="With --ensemble: add the fold models of another run on the same data, template and base "
                   "model (another --seed, say); thresholds are then chosen on all the runs' out-of-fold "
                   "predictions together. Repeatable.")
@user_errors
def export(source, output, atol, opset, optimize, quantize, fp16, ensemble, join):
    """Export a run's best checkpoint (or a checkpoint directory) to a self-contained ONNX model.

    The ONNX model is checked against PyTorch on held-out arguments; beyond --atol the export
    fails and nothing is written. Each variant (--optimize, --quantize, --fp16) is checked the
    same way, and by the official F1 on those arguments' labels: 'score' picks a variant by
    default only if its F1 moved by at most 0.005. The manifest records every check.
    """
    from export.onnx import ExportOptions, export_model

    chosen = tuple(name for name, wanted in (("optimized", optimize), ("int8", quantize), ("fp16", fp16)) if wanted)
    options = ExportOptions(atol=atol, opset=opset, variants=chosen, ensemble=ensemble, join=join)
    export_model(source, output, options, log=log)
