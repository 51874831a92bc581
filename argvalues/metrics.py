"""ValueEval metrics and threshold tuning, shared by the trainer and ``argvalues evaluate``.

The official score follows the organisers' evaluator: per label, precision (0 when nothing is
predicted) and recall; labels with no positive in the truth are left out; macro-P and macro-R
are the means over the remaining labels, and F1 = 2PR / (P + R).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from argvalues.contract import LABELS

THRESHOLD_GRID = np.round(np.arange(0.02, 0.981, 0.01), 2)


@dataclass(frozen=True)
class OfficialScores:
    precision: float
    recall: float
    f1: float
    label_precision: np.ndarray
    label_recall: np.ndarray
    label_f1: np.ndarray
    label_support: np.ndarray


def _harmonic(p, r):
    p, r = np.asarray(p, dtype=float), np.asarray(r, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(p + r > 0, 2 * p * r / np.where(p + r > 0, p + r, 1), 0.0)


def _label_rates(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-label precision and recall along the last axis of stacked predictions."""
    true = y_true.astype(bool)
    pred = y_pred.astype(bool)
    tp = (true & pred).sum(axis=-2)
    predicted = pred.sum(axis=-2)
    relevant = true.sum(axis=0)
    precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
    recall = tp / np.maximum(relevant, 1)
    return precision, recall, relevant


def official_scores(y_true: np.ndarray, y_pred: np.ndarray) -> OfficialScores:
    """The official ValueEval precision, recall and F1 of 0/1 predictions."""
    precision, recall, support = _label_rates(np.asarray(y_true), np.asarray(y_pred))
    scored = support > 0
    if not scored.any():
        raise ValueError("the truth has no positive label at all; the official score is undefined")
    macro_p, macro_r = precision[scored].mean(), recall[scored].mean()
    return OfficialScores(
        precision=float(macro_p),
        recall=float(macro_r),
        f1=float(_harmonic(macro_p, macro_r)),
        label_precision=precision,
        label_recall=recall,
        label_f1=_harmonic(precision, recall),
        label_support=support,
    )


def apply_thresholds(probabilities: np.ndarray, thresholds: np.ndarray | float) -> np.ndarray:
    return (probabilities >= np.asarray(thresholds, dtype=probabilities.dtype)).astype(np.int8)


def matched_thresholds(reference: np.ndarray, reference_thresholds: np.ndarray | float,
                       probabilities: np.ndarray) -> list[float]:
    """Per label, the threshold at which ``probabilities`` label as many rows as ``reference`` does
    at ``reference_thresholds`` (the same rows read another way); no labels needed. A label the
    reference never gives keeps the reference's threshold."""
    thresholds = np.broadcast_to(np.asarray(reference_thresholds, dtype=np.float64), (reference.shape[1],))
    shares = (reference >= thresholds).mean(axis=0)
    return [float(thresholds[j]) if share == 0 else float(np.clip(np.quantile(probabilities[:, j], 1 - share), 0, 1))
            for j, share in enumerate(shares)]


def full_metrics(y_true: np.ndarray, probabilities: np.ndarray, thresholds: np.ndarray | float) -> dict:
    """Everything the reports show for one set of predictions: official, micro, AUC, per label."""
    from sklearn.metrics import f1_score, roc_auc_score

    y_true = np.asarray(y_true).astype(np.int8)
    y_pred = apply_thresholds(probabilities, thresholds)
    official = official_scores(y_true, y_pred)
    has_both = (y_true.sum(0) > 0) & (y_true.sum(0) < len(y_true))
    roc_auc = (
        float(roc_auc_score(y_true[:, has_both], probabilities[:, has_both], average="macro"))
        if has_both.any()
        else float("nan")
    )
    per_label = {}
    for i, label in enumerate(LABELS):
        t, p = y_true[:, i].astype(bool), y_pred[:, i].astype(bool)
        per_label[label] = {
            "precision": float(official.label_precision[i]),
            "recall": float(official.label_recall[i]),
            "f1": float(official.label_f1[i]),
            "support": int(official.label_support[i]),
            "confusion": {"tn": int((~t & ~p).sum()), "fp": int((~t & p).sum()),
                          "fn": int((t & ~p).sum()), "tp": int((t & p).sum())},
        }
    return {
        "precision": official.precision,
        "recall": official.recall,
        "f1": official.f1,
        "micro_f1": float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
        "roc_auc": roc_auc,
        "subset_accuracy": float((y_true == y_pred).all(axis=1).mean()),
        "per_label": per_label,
    }


def _rates_on_grid(y_true: np.ndarray, probabilities: np.ndarray, grid: np.ndarray):
    """Per-label precision and recall for every threshold of the grid: arrays (len(grid), labels)."""
    stacked = probabilities[None, :, :] >= grid[:, None, None]
    precision, recall, support = _label_rates(y_true, stacked)
    return precision, recall, support > 0


def f1_by_global_threshold(y_true: np.ndarray, probabilities: np.ndarray,
                           grid: np.ndarray = THRESHOLD_GRID) -> tuple[np.ndarray, np.ndarray]:
    """The official F1 at every global threshold of ``grid``: (grid, f1)."""
    precision, recall, scored = _rates_on_grid(y_true, probabilities, grid)
    return grid, _harmonic(precision[:, scored].mean(1), recall[:, scored].mean(1))


def tune_global_threshold(y_true: np.ndarray, probabilities: np.ndarray, grid: np.ndarray = THRESHOLD_GRID):
    """The single threshold that maximises the official F1; returns (threshold, f1)."""
    precision, recall, scored = _rates_on_grid(y_true, probabilities, grid)
    f1 = _harmonic(precision[:, scored].mean(1), recall[:, scored].mean(1))
    best = int(np.argmax(f1))
    return float(grid[best]), float(f1[best])


def tune_label_thresholds(
    y_true: np.ndarray, probabilities: np.ndarray, grid: np.ndarray = THRESHOLD_GRID, rounds: int = 3
):
    """Per-label thresholds for the official F1, by coordinate ascent from the best global one.

    The official F1 couples the labels through macro-P and macro-R, so each label's threshold is
    chosen with the others fixed, a few rounds over all labels. Returns (thresholds, f1).
    """
    precision, recall, scored = _rates_on_grid(y_true, probabilities, grid)
    start, _ = tune_global_threshold(y_true, probabilities, grid)
    choice = np.full(probabilities.shape[1], int(np.argmin(np.abs(grid - start))))
    cols = np.arange(probabilities.shape[1])
    n = scored.sum()
    for _ in range(rounds):
        for label in np.flatnonzero(scored):
            p_rest = precision[choice, cols][scored].sum() - precision[choice[label], label]
            r_rest = recall[choice, cols][scored].sum() - recall[choice[label], label]
            f1 = _harmonic((p_rest + precision[:, label]) / n, (r_rest + recall[:, label]) / n)
            choice[label] = int(np.argmax(f1))
    thresholds = grid[choice].astype(float)
    return thresholds, official_scores(y_true, apply_thresholds(probabilities, thresholds)).f1


THRESHOLD_STRATEGIES = ("auto", "global", "per-label")


def choose_thresholds(y_true: np.ndarray, probabilities: np.ndarray, partition: np.ndarray,
                      strategy: str = "auto") -> dict:
    """Pick ``global`` or ``per-label`` thresholds from out-of-fold predictions.

    Tuned thresholds always look best on the rows they were tuned on, and per-label ones more so.
    So each strategy is cross-fitted over ``partition`` (tuned on the other parts, applied to the
    held-out part) and the strategy with the higher cross-fitted F1 wins; its final thresholds are
    then tuned on all rows. ``strategy`` 'global' or 'per-label' forces one (the cross-fitted
    scores are still reported).
    """
    parts = np.unique(partition)
    if len(parts) < 2:
        raise ValueError("threshold selection needs at least two parts to cross-fit over")
    crossfit = {"global": np.zeros_like(probabilities, dtype=np.int8),
                "per-label": np.zeros_like(probabilities, dtype=np.int8)}
    for part in parts:
        held, rest = partition == part, partition != part
        t_global, _ = tune_global_threshold(y_true[rest], probabilities[rest])
        t_label, _ = tune_label_thresholds(y_true[rest], probabilities[rest])
        crossfit["global"][held] = apply_thresholds(probabilities[held], t_global)
        crossfit["per-label"][held] = apply_thresholds(probabilities[held], t_label)
    scores = {name: official_scores(y_true, pred).f1 for name, pred in crossfit.items()}
    if strategy == "auto":
        strategy = "per-label" if scores["per-label"] > scores["global"] else "global"
    if strategy == "global":
        value, tuned_f1 = tune_global_threshold(y_true, probabilities)
        thresholds = np.full(probabilities.shape[1], value)
    else:
        thresholds, tuned_f1 = tune_label_thresholds(y_true, probabilities)
    return {
        "strategy": strategy,
        "thresholds": [float(t) for t in thresholds],
        "crossfit_f1": {name: float(f1) for name, f1 in scores.items()},
        "tuned_f1": float(tuned_f1),
    }
