"""The training losses of ``--loss``: a Trainer whose compute_loss can weight or focus the BCE."""

from __future__ import annotations

import numpy as np


def positive_weights(targets: np.ndarray, cap: float = 10.0) -> np.ndarray:
    """Per-label weight of positives: sqrt(negatives / positives) of the training rows, in [1, cap].

    The square root (rather than the full ratio) keeps rare labels from swamping the loss; measured
    choices belong in benchmarks/README.md."""
    positives = targets.sum(0)
    negatives = len(targets) - positives
    return np.clip(np.sqrt(negatives / np.maximum(positives, 1)), 1.0, cap).astype(np.float32)


def trainer_class(loss: str, pos_weight: np.ndarray | None = None, gamma: float = 2.0):
    """``transformers.Trainer`` for ``loss``; plain BCE is the model's own loss."""
    import torch
    import torch.nn.functional as F
    from transformers import Trainer

    if loss == "bce":
        return Trainer
    weight = torch.tensor(pos_weight) if pos_weight is not None else None

    class ValueTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs.pop("labels")
            outputs = model(**inputs)
            logits = outputs.logits.float()
            labels = labels.to(logits.dtype)
            if loss == "bce-pos-weight":
                value = F.binary_cross_entropy_with_logits(logits, labels, pos_weight=weight.to(logits.device))
            else:  # focal
                ce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
                p = torch.sigmoid(logits)
                p_true = p * labels + (1 - p) * (1 - labels)
                value = (ce * (1 - p_true) ** gamma).mean()
            return (value, outputs) if return_outputs else value

    return ValueTrainer
