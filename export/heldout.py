"""The arguments an exported model is checked and calibrated on, taken from its training run.

- **judged on**: every argument of the best checkpoint's own fold (held out from its training;
  the run's ``oof-probabilities.tsv`` says which fold each argument was in), with its labels;
- **calibrated on**: arguments the checkpoint trained on (the other folds), never the judged ones.

A run's student (``student/best``) learnt every argument of the run (the fold models' probabilities,
not the labels), so no argument is held out from it: it is judged on all the run's arguments but
the calibration sample. Quantisation's drift from fp32 is arithmetic, which rows the model has
seen do not hide, and five times the rows of one fold narrow the F1 change's interval.

A checkpoint without its run falls back to its parity sample for both (small: the judgement is
then coarse, and says how many rows it rests on).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from argvalues.contract import ID_COLUMN
from trainer.run_dir import CheckpointDir, RunDir
from trainer.training_data import read_training_pairs

#: Arguments enough to calibrate activation ranges (more changes the ranges little and costs export time).
CALIBRATION_ROWS = 512


@dataclass
class HeldOut:
    judged: pd.DataFrame
    truth: np.ndarray | None
    calibration: pd.DataFrame
    source: str


def held_out_rows(checkpoint: CheckpointDir, run: RunDir | None, fallback: pd.DataFrame,
                  fallback_truth: np.ndarray | None, seed: int = 0) -> HeldOut:
    """The run's held-out arguments of ``checkpoint`` and calibration arguments, or the fallback sample."""
    found = None
    summary = checkpoint.read_summary() or {}
    if run is not None and run.is_finished() and summary.get("distilled_from"):
        student = _student_rows(run, seed)
        if student is not None:
            return student
    if run is not None and run.is_finished():
        config = run.config()
        fold = summary.get("best", {}).get("fold")
        if fold is not None and all(Path(p).is_file() for p in [*config.arguments, *config.labels]):
            found = config, int(fold)
    if found is None:
        return HeldOut(fallback, fallback_truth, fallback, f"the {len(fallback)} arguments of the checkpoint's parity sample")
    config, fold = found
    arguments, truth = read_training_pairs(config.arguments, config.labels)
    in_fold = arguments[ID_COLUMN].map(run.read_out_of_fold()["fold"]).to_numpy()
    judged = in_fold == fold
    trained = ~judged & pd.notna(in_fold)
    calibration = arguments[trained]
    if len(calibration) > CALIBRATION_ROWS:
        calibration = calibration.sample(CALIBRATION_ROWS, random_state=seed)
    if not judged.any() or calibration.empty:
        return HeldOut(fallback, fallback_truth, fallback, f"the {len(fallback)} arguments of the checkpoint's parity sample")
    return HeldOut(arguments[judged].reset_index(drop=True), truth[judged].astype(int),
                   calibration.reset_index(drop=True),
                   f"all {int(judged.sum())} arguments of fold {fold} in {', '.join(config.arguments)} (held out from the "
                   f"checkpoint's training); calibrated on {len(calibration)} of its training arguments")


def _student_rows(run: RunDir, seed: int) -> HeldOut | None:
    """The run's arguments (those it has out-of-fold probabilities for) with their labels: a
    calibration sample (at most half of them), and every other one judged."""
    config = run.config()
    if not all(Path(p).is_file() for p in [*config.arguments, *config.labels]):
        return None
    arguments, truth = read_training_pairs(config.arguments, config.labels)
    trained = arguments[ID_COLUMN].isin(run.read_out_of_fold().index).to_numpy()
    if trained.sum() < 2:
        return None
    calibration = arguments[trained].sample(min(CALIBRATION_ROWS, int(trained.sum()) // 2), random_state=seed)
    judged = trained & ~arguments.index.isin(calibration.index)
    return HeldOut(arguments[judged].reset_index(drop=True), truth[judged].astype(int),
                   calibration.reset_index(drop=True),
                   f"{int(judged.sum())} arguments of {', '.join(config.arguments)}, all the student learnt but "
                   f"the {len(calibration)} it is calibrated on (it learnt the fold models' probabilities for "
                   "them, not their labels)")
