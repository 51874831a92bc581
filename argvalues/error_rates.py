"""The error rates a model directory records (``error-rates.json``): for each value, at the model's
thresholds and for each way it reads its input, how often it labels a text that carries the value
(true-positive rate) and one that does not (false-positive rate), with precision, recall, F1 and
the counts behind them; for the 20 categories and for the higher-order values they roll up to.

They are measured out of sample (:mod:`export.error_rates` says on what), so that
:mod:`argvalues.prevalence` can correct a corpus's labelled shares for the model's errors, and the
model card can show which values to trust. This module owns the file's format; it needs numpy only.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from argvalues.contract import LABELS
from argvalues.errors import ModelDirError
from argvalues.values import HIGHER_ORDER

ERROR_RATES_NAME = "error-rates.json"
FORMAT_VERSION = 1


def rolled_up(labels: np.ndarray) -> np.ndarray:
    """The higher-order values of rows of the 20 category labels (rows x 4, in :data:`HIGHER_ORDER`'s
    order): a row carries one when it carries any of its categories."""
    labels = np.asarray(labels, dtype=bool)
    return np.stack([labels[:, [LABELS.index(c) for c in members]].any(axis=1) for members in HIGHER_ORDER.values()],
                    axis=1)


def value_rates(truth: np.ndarray, predicted: np.ndarray, names: list[str],
                probabilities: np.ndarray | None = None) -> dict[str, dict]:
    """Per value: the counts (tp, fp, fn, tn), true- and false-positive rates, precision, recall, F1;
    with ``probabilities``, also the mean probability of the rows that carry the value and of those
    that do not (what the probabilistic correction divides by)."""
    truth, predicted = np.asarray(truth, dtype=bool), np.asarray(predicted, dtype=bool)
    rates = {}
    for column, name in enumerate(names):
        t, p = truth[:, column], predicted[:, column]
        tp, fp = int((t & p).sum()), int((~t & p).sum())
        fn, tn = int((t & ~p).sum()), int((~t & ~p).sum())
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        entry = {"tp": tp, "fp": fp, "fn": fn, "tn": tn,
                 "tpr": recall, "fpr": fp / (fp + tn) if fp + tn else 0.0,
                 "precision": precision, "recall": recall,
                 "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0}
        if probabilities is not None:
            scores = np.asarray(probabilities)[:, column]
            entry["mean_probability_positive"] = float(scores[t].mean()) if t.any() else 0.0
            entry["mean_probability_negative"] = float(scores[~t].mean()) if (~t).any() else 0.0
        rates[name] = entry
    return rates


def reading_rates(truth: np.ndarray, predicted: np.ndarray, probabilities: np.ndarray | None = None) -> dict:
    """The rates of one reading: the 20 categories, and the higher-order values measured on the
    rolled-up labels (not derived from the categories' rates)."""
    return {"rows": int(len(truth)),
            "categories": value_rates(truth, predicted, LABELS, probabilities),
            "higher_order": value_rates(rolled_up(truth), rolled_up(predicted), list(HIGHER_ORDER))}


def write_error_rates(model_dir: Path, readings: dict[str, dict], source: str) -> Path:
    """Write ``error-rates.json``: ``readings`` maps a reading (arguments, text) to :func:`reading_rates`;
    ``source`` says in one sentence what the rates were measured on."""
    path = Path(model_dir) / ERROR_RATES_NAME
    path.write_text(json.dumps({"format_version": FORMAT_VERSION, "source": source, "readings": readings},
                               indent=1) + "\n")
    return path


def read_error_rates(model_dir: Path) -> dict | None:
    """The recorded rates (None: the directory has none, as models exported before they were recorded)."""
    path = Path(model_dir) / ERROR_RATES_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        if data.get("format_version") != FORMAT_VERSION or not isinstance(data["readings"], dict):
            raise ValueError("unknown format")
        return data
    except (ValueError, KeyError, TypeError) as error:
        raise ModelDirError(f"{path}: not a valid error-rates file ({error})") from None
