"""The error rates an exported model records (``error-rates.json``, :mod:`argvalues.error_rates`),
measured out of sample, and whether the prevalence correction is worth applying to each value.

Out of sample means on arguments the model did not learn: the run's out-of-fold predictions
(each argument scored by the fold model that did not train on it) at the run's thresholds, for a
fold model (its own fold among them), an ensemble and a student. A student learnt every argument, so it
  has no held-out argument of its own; it learnt to imitate exactly these out-of-fold labels
  (its targets are the ensemble's out-of-fold probabilities centred on the run's thresholds), and
  on a run trained on the training set alone they matched its real rates on validation better
  than its own rates on the arguments it learnt (benchmarks/README.md, "From labels to findings"). Its text
  reading gets the same rates (no fold model reads texts alone).

The estimator is chosen on the run's held-out folds (:func:`choose_method`: each fold's corrections
measured on the other folds, the fold and its stances as the sets to estimate), a choice made
without the validation set; each value also records its bias and ratio out of fold and how much
each varied between folds, which the interval carries (:mod:`argvalues.prevalence`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from argvalues.contract import ID_COLUMN, LABELS, STANCE
from argvalues.error_rates import reading_rates, rolled_up, write_error_rates
from argvalues.metrics import apply_thresholds
from argvalues.model_config import ScoringConfig
from argvalues.prevalence import ADJUSTED, CORRECTED, METHODS, SCALED, SHARE, adjusted, corrected, scaled
from argvalues.values import HIGHER_ORDER
from trainer.run_dir import RunDir
from trainer.training_data import read_training_pairs


def out_of_fold_labels(run: RunDir, thresholds: list[float] | None = None
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.DataFrame]:
    """The run's training labels, its out-of-fold labels at ``thresholds`` (default: the run's), each
    argument's fold, and the arguments, aligned row by row."""
    config = run.config()
    arguments, truth = read_training_pairs(config.arguments, config.labels)
    oof = run.read_out_of_fold()
    kept = arguments[ID_COLUMN].isin(oof.index).to_numpy()
    arguments, truth = arguments[kept].reset_index(drop=True), truth[kept]
    probabilities = oof.loc[arguments[ID_COLUMN], LABELS].to_numpy(dtype=np.float32)
    thresholds = thresholds if thresholds is not None else ScoringConfig.load(run.best.path).thresholds
    predicted = apply_thresholds(probabilities, np.asarray(thresholds, dtype=np.float32)).astype(bool)
    return truth.astype(bool), predicted, oof.loc[arguments[ID_COLUMN], "fold"].to_numpy(), arguments


def _with_higher_order(labels: np.ndarray) -> np.ndarray:
    """The categories' labels, then the higher-order values' (rolled up, measured like categories)."""
    return np.concatenate([labels, rolled_up(labels)], axis=1)


def _corrections(truth: np.ndarray, predicted: np.ndarray) -> dict[str, np.ndarray]:
    """What each method corrects a share with, measured on ``truth`` and ``predicted`` (other folds)."""
    labelled = predicted.mean(axis=0)
    positives, negatives = truth.sum(axis=0), (~truth).sum(axis=0)
    return {"bias": labelled - truth.mean(axis=0),
            "ratio": np.where(labelled > 0, truth.mean(axis=0) / np.maximum(labelled, 1e-12), np.nan),
            "tpr": (truth & predicted).sum(axis=0) / np.maximum(positives, 1),
            "fpr": (~truth & predicted).sum(axis=0) / np.maximum(negatives, 1)}


def _estimates(share: np.ndarray, measured: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each method's estimate of a set's prevalence from its ``share``, corrected with what the
    other folds ``measured`` (:func:`_corrections`)."""
    found = adjusted(share, measured["tpr"], measured["fpr"])
    by_ratio = scaled(share, measured["ratio"])
    by_bias = corrected(share, measured["bias"])
    return {SHARE: share, SCALED: np.where(np.isnan(by_ratio), by_bias, by_ratio),
            CORRECTED: by_bias, ADJUSTED: np.where(np.isnan(found), share, found)}


def choose_method(truth: np.ndarray, predicted: np.ndarray, cells: np.ndarray, folds: np.ndarray) -> dict:
    """The estimator that came nearest the true shares of held-out data: for each fold, its
    corrections measured on the other folds and applied to the fold and to each of its ``cells``
    (stances); mean absolute error over those sets and every value (categories and higher-order).
    One method for every value: per value, five folds are too few to choose on."""
    truth_all, predicted_all = _with_higher_order(truth), _with_higher_order(predicted)
    errors: dict[str, list[float]] = {method: [] for method in METHODS}
    for fold in np.unique(folds):
        inside = folds == fold
        measured = _corrections(truth_all[~inside], predicted_all[~inside])
        sets = [inside, *(inside & (cells == cell) for cell in np.unique(cells[inside]))]
        for rows in sets:
            gold = truth_all[rows].mean(axis=0)
            found = _estimates(predicted_all[rows].mean(axis=0), measured)
            for method in METHODS:
                errors[method].append(float(np.abs(found[method] - gold).mean()))
    mean = {method: float(np.mean(values)) for method, values in errors.items()}
    return {"method": min(mean, key=mean.get), "mean_absolute_error": mean,
            "how": "each fold's corrections measured on the other folds; the fold and each of its stances as sets"}


def fold_corrections(truth: np.ndarray, predicted: np.ndarray, folds: np.ndarray) -> dict[str, np.ndarray]:
    """Per value (categories, then higher-order values), out of fold: the bias (labelled share minus
    true share) and its spread between folds (standard deviation of each fold's bias); the ratio
    (true share over labelled share; 0 where the value was never labelled) and the spread of its
    logarithm between folds."""
    truth_all, predicted_all = _with_higher_order(truth), _with_higher_order(predicted)
    labelled = np.array([predicted_all[folds == f].mean(axis=0) for f in np.unique(folds)])
    true = np.array([truth_all[folds == f].mean(axis=0) for f in np.unique(folds)])
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratios = np.log(true / labelled)
        ratio = np.where(predicted_all.any(axis=0), truth_all.mean(axis=0) / predicted_all.mean(axis=0), 0.0)
    several = len(labelled) > 1
    finite = np.isfinite(log_ratios).all(axis=0)
    log_ratios = np.where(np.isfinite(log_ratios), log_ratios, 0.0)
    return {"bias": predicted_all.mean(axis=0) - truth_all.mean(axis=0),
            "bias_spread": (labelled - true).std(axis=0, ddof=1) if several else np.zeros(labelled.shape[1]),
            "ratio": ratio,
            "ratio_log_spread": np.where(finite, log_ratios.std(axis=0, ddof=1), 0.0) if several
            else np.zeros(labelled.shape[1])}


def run_rates(run: RunDir, scoring: ScoringConfig, thresholds: list[float] | None = None) -> dict:
    """The out-of-fold rates of ``run`` (at ``thresholds``: the run's own by default), each value
    with its bias and ratio, their spread between folds and the chosen method, for every reading
    ``scoring`` records."""
    truth, predicted, folds, arguments = out_of_fold_labels(run, thresholds)
    rates = reading_rates(truth, predicted)
    choice = choose_method(truth, predicted, arguments[STANCE].to_numpy(), folds)
    corrections = fold_corrections(truth, predicted, folds)
    names = [*LABELS, *HIGHER_ORDER]
    for group in ("categories", "higher_order"):
        for value, entry in rates[group].items():
            index = names.index(value)
            entry.update({name: float(values[index]) for name, values in corrections.items()},
                         folds=int(len(np.unique(folds))), method=choice["method"])
    rates["method_choice"] = choice
    return {reading: rates for reading in scoring.readings}


def record_error_rates(model_dir: Path, manifest: dict, run: RunDir | None, log: Callable[[str], None]) -> dict | None:
    """Write ``model_dir/error-rates.json`` where the run's out-of-fold predictions can be read;
    returns the manifest's record of it (None: no rates, and why is logged)."""
    if run is None or not run.is_finished():
        log("error rates: not recorded (no finished training run to measure them out of sample on)")
        return None
    scoring = ScoringConfig.load(model_dir)
    cv = manifest.get("cv") or {}
    try:
        if cv.get("distilled_from") and (scoring.recipe or {}).get("centred_on_thresholds"):
            # a student's threshold 0.5 stands where the ensemble's was: the out-of-fold labels it imitates
            readings = run_rates(run, scoring, scoring.recipe["centred_on_thresholds"])
            source = (f"the out-of-fold predictions of {run.path} at its thresholds, {{rows}} arguments: the labels this "
                      "student learnt to imitate, each made by a fold model that did not train on the argument")
        else:
            readings = run_rates(run, scoring, scoring.thresholds)
            source = (f"the out-of-fold predictions of {run.path}, {{rows}} arguments (each scored by the fold model "
                      "that did not train on it)")
    except (OSError, ValueError, KeyError) as error:
        log(f"error rates: not recorded ({error})")
        return None
    rows = next(iter(readings.values()))["rows"]
    path = write_error_rates(model_dir, readings, source.format(rows=rows))
    choice = next(iter(readings.values()))["method_choice"]
    errors = ", ".join(f"{method} {error:.4f}" for method, error in choice["mean_absolute_error"].items())
    log(f"error rates: recorded out of fold on {rows} arguments; prevalence estimated by {choice['method']} "
        f"(mean absolute error on held-out folds: {errors})")
    return {"file": path.name, "rows": rows, "readings": list(readings)}
