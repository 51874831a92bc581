"""Texts alone: official F1 on the validation set of models read with full arguments and with the
premise alone, each against the first model's full-argument labels (paired bootstrap over the
arguments, 95%).

A model trained to read texts (``argvalues.json`` records ``text_template``) reads the premise
alone as ``score --text-column`` does; one trained on arguments only cannot, and gets each premise
with the placeholders a user would invent (Conclusion ".", Stance "in favor of"). For a model
that reads both, the mean of its two readings' probabilities (twice the cost) is shown too.

    .venv/bin/python benchmarks/text_readings.py REFERENCE_MODEL [MODEL ...] [--data ../shared/data/valueeval23]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from argvalues.contract import CONCLUSION, ID_COLUMN, PREMISE, STANCE, read_labelled_arguments
from argvalues.metrics import apply_thresholds, official_scores
from argvalues.model_config import TEXT
from export.judging import paired_f1_change
from scorer.model import ScoringModel


def readings(model_dir: Path, arguments: pd.DataFrame, variant: str) -> dict[str, np.ndarray]:
    """The model's labels for each way of reading the validation arguments, each at its reading's
    thresholds (the text reading's own, where the model records them)."""
    whole = ScoringModel(model_dir, device="cpu", variant=variant)
    probabilities = whole.probabilities(arguments)
    found = {"full arguments": apply_thresholds(probabilities, whole.thresholds).astype(bool)}
    if TEXT in whole.config.readings:
        alone = ScoringModel(model_dir, device="cpu", variant=variant, reading=TEXT)
        text = alone.probabilities(arguments[[ID_COLUMN, PREMISE]])
        found["premise alone (--text-column)"] = apply_thresholds(text, alone.thresholds).astype(bool)
        if whole.config.text_thresholds is not None:
            found["premise alone, at the arguments' thresholds"] = apply_thresholds(text, whole.thresholds).astype(bool)
        found["both readings averaged"] = apply_thresholds((probabilities + text) / 2, whole.thresholds).astype(bool)
    else:
        placeholders = arguments.assign(**{CONCLUSION: ".", STANCE: "in favor of"})
        found["premise alone (Conclusion '.', Stance 'in favor of')"] = apply_thresholds(
            whole.probabilities(placeholders), whole.thresholds).astype(bool)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", type=Path, nargs="+", help="model directories; the first is the reference")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/valueeval23"))
    parser.add_argument("--variant", default="fp32", help="the variant each model runs (fp32: the recipe, not a variant)")
    args = parser.parse_args()
    arguments, labels = read_labelled_arguments(args.data / "arguments-validation.tsv",
                                                args.data / "labels-validation.tsv")
    truth = labels.astype(bool)
    reference = None
    print(f"validation: {len(arguments)} arguments; variant {args.variant}; paired bootstrap, 2000 resamples, 95%\n")
    print("| model | reading | official F1 (P / R) | change vs the first model's full arguments | "
          "change vs its own full arguments |")
    print("| --- | --- | --- | --- | --- |")
    for model_dir in args.models:
        found = readings(model_dir, arguments, args.variant)
        own = found["full arguments"]
        reference = own if reference is None else reference
        for name, predicted in found.items():
            scores = official_scores(truth, predicted)
            cells = []
            for base in (reference, own):
                change, low, high = paired_f1_change(truth, base, predicted)
                cells.append(f"{change:+.4f} ({low:+.4f} to {high:+.4f})")
            print(f"| {model_dir} | {name} | {scores.f1:.4f} ({scores.precision:.4f} / {scores.recall:.4f}) | "
                  f"{cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
