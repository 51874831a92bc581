"""The ``argvalues`` command group. Heavy libraries load inside the commands that need them."""

from __future__ import annotations

import click

from argvalues import __version__
from export.cli import export
from scorer.cli import evaluate, predict, score, summarize, values
from trainer.cli import distill, train


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="argvalues")
def main() -> None:
    """Find the human values behind arguments (SemEval-2023 Task 4, Touché23-ValueEval).

    \b
    argvalues train ...     fine-tune with conclusion-grouped cross-validation
    argvalues distill ...   one student model from a fold ensemble's probabilities
    argvalues export RUN    write a self-contained ONNX model directory
    score FILE.tsv          label a corpus with ONNX Runtime (no torch)
    argvalues summarize S   each value's share and corrected prevalence, overall and per group
    argvalues values        the 20 value categories and what they mean
    """


for command in (train, distill, export, score, evaluate, predict, summarize, values):
    main.add_command(command)
