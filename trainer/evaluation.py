"""Saved checkpoints scored with PyTorch: the reference export checks its ONNX models against, and
the validation scores of a run or a student."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from argvalues.metrics import full_metrics
from argvalues.model_config import ARGUMENTS, ScoringConfig
from trainer.run_dir import write_probabilities


def checkpoint_probabilities(checkpoints: list[Path], arguments: pd.DataFrame, scoring: ScoringConfig | None = None,
                             batch_size: int = 64, reading: str = ARGUMENTS) -> np.ndarray:
    """PyTorch's probabilities for ``arguments``: of one checkpoint, or the mean over several (the
    members of an ensemble). Inputs are built as ``scoring`` says for ``reading`` (default: the
    first checkpoint's scoring config), with the first checkpoint's tokenizer."""
    import torch

    from trainer.data import ArgumentDataset, predict_probabilities
    from trainer.modeling import load_classifier, load_tokenizer

    scoring = scoring or ScoringConfig.load(checkpoints[0])
    tokenizer = load_tokenizer(str(checkpoints[0]))
    dataset = ArgumentDataset(arguments, scoring.template_for(reading), tokenizer, scoring.max_length)
    device = "cuda" if torch.cuda.is_available() else "cpu"  # one model at a time
    return np.mean([predict_probabilities(load_classifier(str(checkpoint)).to(device), dataset, tokenizer, batch_size)
                    for checkpoint in checkpoints], axis=0)


def evaluate_checkpoint(checkpoint: Path, arguments: pd.DataFrame, targets: np.ndarray,
                        probabilities_path: Path | None = None, batch_size: int = 64, reading: str = ARGUMENTS) -> dict:
    """Metrics of a saved checkpoint on labelled arguments (read as ``reading`` says: whole, or the
    premise alone as a text), at the checkpoint's own thresholds (and at 0.5); its probabilities
    are written to ``probabilities_path`` when given."""
    from argvalues.contract import ID_COLUMN

    scoring = ScoringConfig.load(checkpoint)
    probabilities = checkpoint_probabilities([checkpoint], arguments, scoring, batch_size, reading)
    if probabilities_path is not None:
        write_probabilities(probabilities_path, arguments[ID_COLUMN], probabilities)
    metrics = full_metrics(targets, probabilities, np.asarray(scoring.thresholds_for(reading)))
    metrics["rows"] = len(arguments)
    metrics["at_0.5"] = {k: v for k, v in full_metrics(targets, probabilities, 0.5).items() if k != "per_label"}
    return metrics
