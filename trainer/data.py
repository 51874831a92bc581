"""Tokenized datasets for the Trainer: dynamic padding, so no row is padded to max length."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from argvalues.contract import InputTemplate


class ArgumentDataset(torch.utils.data.Dataset):
    """Arguments tokenized once, unpadded; the collator pads each batch to its longest row."""

    def __init__(self, arguments: pd.DataFrame, template: InputTemplate, tokenizer, max_length: int,
                 targets: np.ndarray | None = None):
        text, text_pair = template.render(arguments)
        self.encodings = tokenizer(text, text_pair, truncation=True, max_length=max_length)
        self.targets = targets

    def __len__(self) -> int:
        return len(self.encodings["input_ids"])

    def __getitem__(self, index: int) -> dict:
        item = {key: values[index] for key, values in self.encodings.items()}
        if self.targets is not None:
            item["labels"] = self.targets[index].tolist()
        return item


def predict_probabilities(model, dataset: ArgumentDataset, tokenizer, batch_size: int = 64) -> np.ndarray:
    """Sigmoid probabilities of ``model`` on ``dataset`` in dataset order (length-sorted batches)."""
    from transformers import DataCollatorWithPadding

    collate = DataCollatorWithPadding(tokenizer)
    order = np.argsort([len(ids) for ids in dataset.encodings["input_ids"]], kind="stable")
    device = next(model.parameters()).device
    model.eval()
    out = np.zeros((len(dataset), model.config.num_labels), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            batch = collate([{k: v for k, v in dataset[int(i)].items() if k != "labels"} for i in rows])
            logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
            out[rows] = torch.sigmoid(logits.float()).cpu().numpy()
    return out
