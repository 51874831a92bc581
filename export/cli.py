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
@user_errors
def export(source, output, atol, opset):
    """Export a run's best checkpoint (or a checkpoint directory) to a self-contained ONNX model.

    The ONNX model is checked against PyTorch on held-out arguments; beyond --atol the export
    fails and nothing is written.
    """
    from export.onnx import export_model

    export_model(source, output, atol=atol, opset=opset, log=log)
