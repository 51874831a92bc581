"""``argvalues predict``: one argument's (or one text's) labels with their probabilities, for a quick look."""

from __future__ import annotations

import pandas as pd

from argvalues.contract import ARGUMENT_COLUMNS, ID_COLUMN, PREMISE, STANCE_SPELLINGS
from argvalues.errors import DataError
from argvalues.model_config import TEXT
from argvalues.rows import spelling
from scorer.model import ScoringModel


def predict_one(model_dir: str, device: str, premise: str, stance: str, conclusion: str) -> list[dict]:
    """Every label of one argument with its probability, threshold and decision, most probable first."""
    if spelling(stance) not in STANCE_SPELLINGS:
        raise DataError(f"--stance must be one of {list(dict.fromkeys(STANCE_SPELLINGS.values()))} (or pro, con, "
                        f"for, in favour of), got {stance!r}")
    row = pd.DataFrame([["-", conclusion, STANCE_SPELLINGS[spelling(stance)], premise]], columns=ARGUMENT_COLUMNS)
    return _ranked(ScoringModel(model_dir, device), row)


def predict_text(model_dir: str, device: str, text: str) -> list[dict]:
    """Every label of one text alone, as :func:`predict_one` gives them."""
    if not text.strip():
        raise DataError("--text is empty")
    return _ranked(ScoringModel(model_dir, device, reading=TEXT), pd.DataFrame({ID_COLUMN: ["-"], PREMISE: [text]}))


def _ranked(model: ScoringModel, row: pd.DataFrame) -> list[dict]:
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
