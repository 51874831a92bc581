"""The error rates an exported model records (``error-rates.json``, :mod:`argvalues.error_rates`),
measured out of sample, and whether the prevalence correction is worth applying to each value.

Out of sample means on arguments the model did not learn: the run's out-of-fold predictions
(each argument scored by the fold model that did not train on it) at the run's thresholds, for a
fold model (its own fold among them), an ensemble and a student. A student learnt every argument, so it
  has no held-out argument of its own; it learnt to imitate exactly these out-of-fold labels
  (its targets are the ensemble's out-of-fold probabilities centred on the run's thresholds), and
  on a run trained on the training set alone they matched its real rates on validation better
  than its own rates on the arguments it learnt (benchmarks/README.md, "Findings"). Its text
  reading gets the same rates (no fold model reads texts alone).

The correction is applied to a value only where it measured better than the labelled share on
the run's folds (:func:`choose_methods`: rates from the other folds, each fold's stances as groups),
recorded as each value's ``method``: a choice made without the validation set.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from argvalues.contract import ID_COLUMN, LABELS, STANCE
from argvalues.error_rates import reading_rates, rolled_up, value_rates, write_error_rates
from argvalues.metrics import apply_thresholds
from argvalues.model_config import ScoringConfig
from argvalues.prevalence import ADJUSTED, SHARE, adjusted
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


def choose_methods(truth: np.ndarray, predicted: np.ndarray, cells: np.ndarray, folds: np.ndarray) -> dict[str, str]:
    """Per value (categories and higher-order values): ``adjusted`` where the correction, with rates
    measured on the other folds, came nearer each cell's true share than the labelled share did
    (mean absolute error over the cells: each fold's groups in ``cells``), else ``share``."""
    truth_all = np.concatenate([truth, rolled_up(truth)], axis=1)
    predicted_all = np.concatenate([predicted, rolled_up(predicted)], axis=1)
    names = [*LABELS, *HIGHER_ORDER]
    share_error, adjusted_error = np.zeros(len(names)), np.zeros(len(names))
    for fold in np.unique(folds):
        inside = folds == fold
        rates = value_rates(truth_all[~inside], predicted_all[~inside], names)
        tpr = np.array([rates[n]["tpr"] for n in names])
        fpr = np.array([rates[n]["fpr"] for n in names])
        for cell in np.unique(cells[inside]):
            rows = inside & (cells == cell)
            gold, share = truth_all[rows].mean(axis=0), predicted_all[rows].mean(axis=0)
            corrected = adjusted(share, tpr, fpr)
            share_error += np.abs(share - gold)
            adjusted_error += np.where(np.isnan(corrected), np.inf, np.abs(corrected - gold))
    return {name: ADJUSTED if adjusted_error[i] < share_error[i] else SHARE for i, name in enumerate(names)}


def run_rates(run: RunDir, scoring: ScoringConfig, thresholds: list[float] | None = None) -> dict:
    """The out-of-fold rates of ``run`` (at ``thresholds``: the run's own by default), each value
    with its chosen method, for every reading ``scoring`` records."""
    truth, predicted, folds, arguments = out_of_fold_labels(run, thresholds)
    rates = reading_rates(truth, predicted)
    methods = choose_methods(truth, predicted, arguments[STANCE].to_numpy(), folds)
    for group in ("categories", "higher_order"):
        for value, entry in rates[group].items():
            entry["method"] = methods[value]
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
    adjusted_values = sum(e["method"] == ADJUSTED for e in next(iter(readings.values()))["categories"].values())
    log(f"error rates: recorded out of fold on {rows} arguments; the correction measured better than the share for "
        f"{adjusted_values} of {len(LABELS)} categories")
    return {"file": path.name, "rows": rows, "readings": list(readings)}
