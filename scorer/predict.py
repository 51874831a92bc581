"""``argvalues predict``: one argument's labels with their probabilities, for a quick look."""

from __future__ import annotations

import pandas as pd

from argvalues.contract import ARGUMENT_COLUMNS, STANCES
from argvalues.errors import DataError
from scorer.model import ScoringModel


def predict_one(model: ScoringModel, premise: str, stance: str, conclusion: str) -> list[dict]:
    """Every label with its probability, threshold and decision, most probable first."""
    if stance not in STANCES:
        raise DataError(f"--stance must be one of {list(STANCES)}, got {stance!r}")
    row = pd.DataFrame([["-", conclusion, stance, premise]], columns=ARGUMENT_COLUMNS)
    probabilities = model.probabilities(row)[0]
    rows = [
        {"label": label, "probability": float(p), "threshold": float(t), "predicted": bool(p >= t)}
        for label, p, t in zip(model.labels, probabilities, model.thresholds)
    ]
    return sorted(rows, key=lambda r: -r["probability"])


def render_prediction(rows: list[dict]) -> str:
    chosen = [r["label"] for r in rows if r["predicted"]]
    lines = [f"values: {', '.join(chosen) if chosen else '(none above its threshold)'}", ""]
    lines += [f"{'*' if r['predicted'] else ' '} {r['label']:<28} {r['probability']:.3f}  (threshold {r['threshold']:.2f})"
              for r in rows]
    return "\n".join(lines)
