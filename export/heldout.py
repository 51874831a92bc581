"""The arguments an exported model is checked and calibrated on, taken from its training run.

- **judged on**: every argument of the best checkpoint's own fold (held out from its training;
  the run's ``oof-probabilities.tsv`` says which fold each argument was in), with its labels;
- **calibrated on**: arguments the checkpoint trained on (the other folds), never the judged ones.

A checkpoint without its run falls back to its parity sample for both (small: the judgement is
then coarse, and says how many rows it rests on).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from argvalues.contract import ID_COLUMN, read_labelled_arguments

#: Arguments enough to calibrate activation ranges (more changes the ranges little and costs export time).
CALIBRATION_ROWS = 512


@dataclass
class HeldOut:
    judged: pd.DataFrame
    truth: np.ndarray | None
    calibration: pd.DataFrame
    source: str


def _best_fold(checkpoint: Path, run_dir: Path) -> int | None:
    for path in (checkpoint / "cv-summary.json", run_dir / "cv-report.json"):
        if path.is_file():
            fold = json.loads(path.read_text()).get("best", {}).get("fold")
            if fold is not None:
                return int(fold)
    return None


def held_out_rows(checkpoint: Path, run_dir: Path | None, fallback: pd.DataFrame,
                  fallback_truth: np.ndarray | None, seed: int = 0) -> HeldOut:
    """The run's held-out arguments of ``checkpoint`` and calibration arguments, or the fallback sample."""
    from trainer.config import OOF_PROBABILITIES_NAME, RUN_CONFIG_NAME

    found = None
    if run_dir is not None and (run_dir / RUN_CONFIG_NAME).is_file() and (run_dir / OOF_PROBABILITIES_NAME).is_file():
        config = json.loads((run_dir / RUN_CONFIG_NAME).read_text())
        fold = _best_fold(checkpoint, run_dir)
        if fold is not None and Path(config["arguments"]).is_file() and Path(config["labels"]).is_file():
            found = config, fold
    if found is None:
        return HeldOut(fallback, fallback_truth, fallback, "the checkpoint's parity sample")
    config, fold = found
    arguments, truth = read_labelled_arguments(config["arguments"], config["labels"])
    folds = pd.read_csv(run_dir / OOF_PROBABILITIES_NAME, sep="\t", usecols=[ID_COLUMN, "fold"], dtype={ID_COLUMN: str})
    fold_of = dict(zip(folds[ID_COLUMN], folds["fold"]))
    in_fold = arguments[ID_COLUMN].map(fold_of).to_numpy()
    judged = in_fold == fold
    trained = ~judged & pd.notna(in_fold)
    calibration = arguments[trained]
    if len(calibration) > CALIBRATION_ROWS:
        calibration = calibration.sample(CALIBRATION_ROWS, random_state=seed)
    if not judged.any() or calibration.empty:
        return HeldOut(fallback, fallback_truth, fallback, "the checkpoint's parity sample")
    return HeldOut(arguments[judged].reset_index(drop=True), truth[judged].astype(int),
                   calibration.reset_index(drop=True),
                   f"all {int(judged.sum())} arguments of fold {fold} in {config['arguments']} (held out from the "
                   f"checkpoint's training); calibrated on {len(calibration)} of its training arguments")

