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


def label_priors(targets: np.ndarray) -> np.ndarray:
    """Each label's share of positives in the training rows, kept inside (0, 1) for its log-odds."""
    rows = len(targets)
    return np.clip(targets.sum(0), 1, rows - 1).astype(np.float32) / rows


def trainer_class(loss: str, pos_weight: np.ndarray | None = None, gamma: float = 2.0,
                  priors: np.ndarray | None = None, rows: int | None = None):
    """``transformers.Trainer`` whose loss is ``loss`` (bce, bce-pos-weight, focal, cb-ntr).

    ``cb-ntr`` is the class-balanced focal loss with negative-tolerant regularisation of Huang et al.
    (2021, "Balancing methods for multi-label text classification with long-tailed class
    distribution"), with their settings: focal gamma 2 and alpha 0.5; each label's logit shifted by
    0.05 of its prior's log-odds (``priors``: positives / ``rows`` of the training fold) and the
    negatives' logits scaled by 2 (their loss by 1/2); class-balanced weights (1 - b) / (1 - b^n)
    with b = 0.9 over the n positives of each label, times 10.

    Targets wider than the model's category logits carry the level-1 values after the categories
    (``--level1-labels``): the same loss on the model's level-1 logits is added, and only the
    category logits are returned for evaluation. ``pos_weight`` then covers both."""
    import torch
    import torch.nn.functional as F
    from transformers import Trainer
    from transformers.modeling_outputs import SequenceClassifierOutput

    weight = torch.tensor(pos_weight) if pos_weight is not None else None
    logit_shift = None
    if loss == "cb-ntr":
        if priors is None or rows is None:
            raise ValueError("the cb-ntr loss needs the training labels' priors and row count")
        positives = np.asarray(priors, dtype=np.float64) * rows
        weight = torch.tensor(10 * (1 - 0.9) / (1 - 0.9 ** positives), dtype=torch.float32)
        logit_shift = torch.tensor(0.05 * np.log(priors / (1 - priors)), dtype=torch.float32)

    def one_loss(logits, labels, weights, shift):
        if loss == "cb-ntr":
            logits = logits + shift
            logits = torch.where(labels > 0.5, logits, 2.0 * logits)  # negative-tolerant: negatives scaled
            ce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
            p_true = torch.exp(-ce)
            scale = torch.where(labels > 0.5, 1.0, 0.5) * weights
            return (0.5 * (1 - p_true) ** gamma * ce * scale).mean()
        if loss == "bce":
            return F.binary_cross_entropy_with_logits(logits, labels)
        if loss == "bce-pos-weight":
            return F.binary_cross_entropy_with_logits(logits, labels, pos_weight=weights)
        ce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")  # focal
        p = torch.sigmoid(logits)
        p_true = p * labels + (1 - p) * (1 - labels)
        return (ce * (1 - p_true) ** gamma).mean()

    class ValueTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs.pop("labels")
            config = getattr(model, "config", None)  # (a bare module in the tests: no level-1 targets)
            width = config.num_labels if config is not None else labels.shape[-1]
            outputs = model(**inputs, return_level1=True) if labels.shape[-1] > width else model(**inputs)
            logits = outputs.logits.float()
            labels = labels.to(logits.dtype)
            weights = weight.to(logits.device) if weight is not None else None
            shift = logit_shift.to(logits.device) if logit_shift is not None else None
            value = one_loss(logits, labels[:, :width], *_head(weights, shift, columns=slice(None, width)))
            if labels.shape[-1] > width:
                value = value + one_loss(outputs.level1_logits.float(), labels[:, width:],
                                         *_head(weights, shift, columns=slice(width, None)))
            return (value, SequenceClassifierOutput(logits=outputs.logits)) if return_outputs else value

    return ValueTrainer


def _head(*per_label, columns: slice) -> list:
    """The per-label tensors (or None) of one head's columns."""
    return [None if values is None else values[columns] for values in per_label]
