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
    """``transformers.Trainer`` whose loss is ``loss`` (bce, bce-pos-weight, focal).

    Targets wider than the model's category logits carry the level-1 values after the categories
    (``--level1-labels``): the same loss on the model's level-1 logits is added, and only the
    category logits are returned for evaluation. ``pos_weight`` then covers both."""
    import torch
    import torch.nn.functional as F
    from transformers import Trainer
    from transformers.modeling_outputs import SequenceClassifierOutput

    weight = torch.tensor(pos_weight) if pos_weight is not None else None

    def one_loss(logits, labels, weights):
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
            value = one_loss(logits, labels[:, :width], None if weights is None else weights[:width])
            if labels.shape[-1] > width:
                value = value + one_loss(outputs.level1_logits.float(), labels[:, width:],
                                         None if weights is None else weights[width:])
            return (value, SequenceClassifierOutput(logits=outputs.logits)) if return_outputs else value

    return ValueTrainer
