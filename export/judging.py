"""Whether a faster variant's labels hold: judged against fp32 on every held-out row a run has.

Two measures, both recorded in the manifest:

- **label agreement**: the share of (argument, label) decisions the variant makes as fp32 does;
- **official F1 change** (variant minus fp32) on the rows' true labels, with a 95% interval from a
  paired bootstrap: rows are resampled with replacement and both models are scored on the same
  resample, so the interval reflects the rows where the two differ, not the spread of F1 itself.

A variant is picked by default only when its agreement is at least :data:`MIN_LABEL_AGREEMENT` and
the interval's lower end loses no more than :data:`MAX_F1_DRIFT` (we are 97.5% sure it costs less).
On a few hundred rows a macro F1 moves by more than that bound; on a fold's 1,000-2,700 rows the
paired interval is a few thousandths wide.
"""

from __future__ import annotations

import numpy as np

from argvalues.metrics import apply_thresholds, official_scores
from argvalues.variants import MAX_F1_DRIFT

MIN_LABEL_AGREEMENT = 0.995
BOOTSTRAP_RESAMPLES = 2000


def _f1_of_counts(tp: np.ndarray, predicted: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """Official F1 of per-label counts stacked along the first axis (resamples x labels)."""
    scored = relevant > 0
    precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
    recall = tp / np.maximum(relevant, 1)
    count = np.maximum(scored.sum(axis=1), 1)
    macro_p = (precision * scored).sum(axis=1) / count
    macro_r = (recall * scored).sum(axis=1) / count
    total = macro_p + macro_r
    return np.where(total > 0, 2 * macro_p * macro_r / np.where(total > 0, total, 1), 0.0)


def paired_f1_change(truth: np.ndarray, reference: np.ndarray, candidate: np.ndarray,
                     resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> tuple[float, float, float]:
    """Official F1 of ``candidate`` minus that of ``reference`` (0/1 labels) and its paired 95% interval."""
    truth, reference, candidate = (np.asarray(a, dtype=bool) for a in (truth, reference, candidate))
    change = official_scores(truth, candidate).f1 - official_scores(truth, reference).f1
    rows = len(truth)
    # each resample as row multiplicities: the counts of every label are then one matrix product
    weights = np.random.default_rng(seed).multinomial(rows, np.full(rows, 1.0 / rows), size=resamples)
    weights = weights.astype(np.float64)
    relevant = weights @ truth
    changes = (_f1_of_counts(weights @ (truth & candidate), weights @ candidate, relevant)
               - _f1_of_counts(weights @ (truth & reference), weights @ reference, relevant))
    low, high = np.quantile(changes, [0.025, 0.975])
    return float(change), float(low), float(high)


def judge_variant(reference: np.ndarray, candidate: np.ndarray, thresholds: np.ndarray,
                  truth: np.ndarray | None) -> dict:
    """Agreement of ``candidate``'s labels with ``reference``'s (fp32) and the F1 change on ``truth``."""
    reference_labels = apply_thresholds(reference, thresholds)
    candidate_labels = apply_thresholds(candidate, thresholds)
    same = reference_labels == candidate_labels
    result = {"rows": int(len(reference)), "labels": int(same.size), "label_flips": int((~same).sum()),
              "label_agreement": float(same.mean()), "rows_unchanged": float(same.all(axis=1).mean()),
              "max_abs_difference": float(np.abs(reference - candidate).max())}
    ok = result["label_agreement"] >= MIN_LABEL_AGREEMENT
    if truth is not None and np.asarray(truth).any():
        change, low, high = paired_f1_change(truth, reference_labels, candidate_labels)
        result.update(f1_fp32=official_scores(truth, reference_labels).f1,
                      f1=official_scores(truth, candidate_labels).f1, f1_change=change,
                      f1_change_interval=[low, high], f1_change_interval_how=(
                          f"paired bootstrap, {BOOTSTRAP_RESAMPLES} resamples of the rows, 95%"))
        ok = ok and low >= -MAX_F1_DRIFT
    result["default_ok"] = bool(ok)
    result["rule"] = (f"label agreement with fp32 >= {MIN_LABEL_AGREEMENT} and the F1 change's 95% interval "
                      f"above -{MAX_F1_DRIFT}")
    return result
