"""``argvalues evaluate``: the official ValueEval scores of a predictions file (no torch, no sklearn)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from argvalues.contract import ID_COLUMN, LABELS, read_labels, read_predictions
from argvalues.errors import DataError
from argvalues.metrics import apply_thresholds, official_scores


def evaluate_files(predictions_path: str | Path, labels_path: str | Path, threshold: float | None = None) -> dict:
    """Official scores of ``predictions_path`` against ``labels_path``.

    As in the organisers' evaluator, an argument without a prediction counts as predicting no
    label, and predictions for arguments without labels are ignored (both are counted).
    """
    truth = read_labels(labels_path).set_index(ID_COLUMN)
    predictions = read_predictions(predictions_path).set_index(ID_COLUMN)
    values = predictions[LABELS].to_numpy(dtype=np.float32)
    is_binary = np.isin(values, (0.0, 1.0)).all()
    if not is_binary and threshold is None:
        raise DataError(f"{predictions_path}: holds probabilities, not 0/1 labels; pass --threshold")
    predicted = apply_thresholds(values, threshold) if threshold is not None else values.astype(np.int8)
    aligned = np.zeros((len(truth), len(LABELS)), dtype=np.int8)
    found = truth.index.isin(predictions.index)
    positions = predictions.index.get_indexer(truth.index[found])
    aligned[found] = predicted[positions]
    if not truth[LABELS].to_numpy().any():
        raise DataError(f"{labels_path}: no argument has any label (every value is 0), so the official scores "
                        "are undefined; expected a labels file with at least one 1")
    scores = official_scores(truth[LABELS].to_numpy(), aligned)
    return {
        "precision": scores.precision,
        "recall": scores.recall,
        "f1": scores.f1,
        "rows": len(truth),
        "missing_predictions": int((~found).sum()),
        "unknown_predictions": int((~predictions.index.isin(truth.index)).sum()),
        "per_label": {
            label: {"precision": float(scores.label_precision[i]), "recall": float(scores.label_recall[i]),
                    "f1": float(scores.label_f1[i]), "support": int(scores.label_support[i])}
            for i, label in enumerate(LABELS)
        },
    }


def render_evaluation(result: dict) -> str:
    lines = [
        f"Official F1 {result['f1']:.4f}  (macro precision {result['precision']:.4f}, "
        f"macro recall {result['recall']:.4f}; {result['rows']} arguments)",
        "",
        f"{'label':<28} {'support':>7} {'P':>6} {'R':>6} {'F1':>6}",
    ]
    for label, row in result["per_label"].items():
        lines.append(f"{label:<28} {row['support']:>7} {row['precision']:>6.3f} {row['recall']:>6.3f} {row['f1']:>6.3f}")
    return "\n".join(lines)
