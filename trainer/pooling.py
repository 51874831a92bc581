"""Mean pooling for ``--pooling mean``: the classifier head reads the mean of the last hidden states.

``AutoModelForSequenceClassification`` classifies from the first token (BERT through its pooler
layer). Sentence-embedding models such as all-MiniLM-L6-v2 were trained to be read by the mean
over their tokens instead, and their pooler layer was never trained. This model is any
``AutoModel`` encoder plus masked mean pooling, dropout and a linear head. Its checkpoint is a
normal ``save_pretrained`` directory: the encoder's own config with ``argvalues_pooling: "mean"``
(how :func:`trainer.modeling.load_classifier` recognises it) and the weights under ``encoder.``
and ``classifier.``. It returns ``logits`` like the Hugging Face classifiers, so the Trainer, the
losses, Optimum's ONNX export (``onnx_export_from_model``) and the scorer treat both alike.

Two optional parts, both recorded in the config so that a checkpoint rebuilds them:
  * ``argvalues_level1_labels`` (the 54 level-1 value names): a second linear head on the pooled
    embedding, trained beside the 20-way one (``return_level1=True`` returns its logits). The
    exported graph outputs the 20 category logits only: the second head is not in it.
  * ``argvalues_descriptions`` (how many value phrasings): the pooled embedding's cosine
    similarity to each phrasing's embedding (computed once by the base encoder, kept as a buffer
    in the weights) is appended to what the category head reads: a fixed linear map inside the graph.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

POOLING_ATTRIBUTE = "argvalues_pooling"
LEVEL1_ATTRIBUTE = "argvalues_level1_labels"
DESCRIPTIONS_ATTRIBUTE = "argvalues_descriptions"


@dataclass
class ValueClassifierOutput(SequenceClassifierOutput):
    level1_logits: torch.Tensor | None = None


def masked_mean(hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The mean of each row's hidden states over its real (unpadded) tokens."""
    mask = attention_mask.unsqueeze(-1).to(hidden_states.dtype)
    return (hidden_states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def _without_pooler(make, *args, **kwargs) -> PreTrainedModel:
    """``make`` (``AutoModel.from_config`` or ``.from_pretrained``) without BERT's first-token pooler
    layer, where the architecture has one."""
    try:
        return make(*args, add_pooling_layer=False, **kwargs)
    except TypeError:  # architectures without a pooler layer do not take the argument
        return make(*args, **kwargs)


class MeanPoolingClassifier(PreTrainedModel):
    config_class = PretrainedConfig
    base_model_prefix = "encoder"
    supports_gradient_checkpointing = True

    def __init__(self, config: PretrainedConfig):
        super().__init__(config)
        self.encoder = _without_pooler(AutoModel.from_config, config)
        dropout = getattr(config, "classifier_dropout", None)
        if dropout is None:
            dropout = getattr(config, "hidden_dropout_prob", 0.1)
        self.dropout = nn.Dropout(dropout)
        descriptions = getattr(config, DESCRIPTIONS_ATTRIBUTE, 0) or 0
        if descriptions:
            self.register_buffer("description_embeddings", torch.zeros(descriptions, config.hidden_size))
        else:
            self.description_embeddings = None
        self.classifier = nn.Linear(config.hidden_size + descriptions, config.num_labels)
        level1 = getattr(config, LEVEL1_ATTRIBUTE, None) or []
        self.level1_classifier = nn.Linear(config.hidden_size, len(level1)) if level1 else None
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            module.weight.data.normal_(mean=0.0, std=getattr(self.config, "initializer_range", 0.02))
            if module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, nn.Embedding):
            module.weight.data.normal_(mean=0.0, std=getattr(self.config, "initializer_range", 0.02))
        elif isinstance(module, nn.LayerNorm):
            module.weight.data.fill_(1.0)
            module.bias.data.zero_()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **kwargs):
        """``labels`` may hold the level-1 targets after the category ones (the losses are summed);
        ``return_level1=True`` (a keyword, outside the signature that exporters fill in by position)
        returns the level-1 logits too."""
        return_level1 = kwargs.pop("return_level1", False) is True
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        encoder_inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            encoder_inputs["token_type_ids"] = token_type_ids
        hidden_states = self.encoder(**encoder_inputs).last_hidden_state
        pooled = masked_mean(hidden_states, attention_mask)
        features = pooled
        if self.description_embeddings is not None:
            similarity = nn.functional.normalize(pooled, dim=-1) @ self.description_embeddings.to(pooled.dtype).T
            features = torch.cat([pooled, similarity], dim=-1)
        logits = self.classifier(self.dropout(features))
        wants_level1 = self.level1_classifier is not None and (
            return_level1 or (labels is not None and labels.shape[-1] > logits.shape[-1]))
        level1_logits = self.level1_classifier(self.dropout(pooled)) if wants_level1 else None
        loss = None
        if labels is not None:  # plain BCE, as the Hugging Face classifiers do for multi-label problems
            width = logits.shape[-1]
            loss = nn.functional.binary_cross_entropy_with_logits(logits.float(), labels[..., :width].float())
            if level1_logits is not None and labels.shape[-1] > width:
                loss = loss + nn.functional.binary_cross_entropy_with_logits(level1_logits.float(),
                                                                             labels[..., width:].float())
        if level1_logits is not None:
            return ValueClassifierOutput(loss=loss, logits=logits, level1_logits=level1_logits)
        return SequenceClassifierOutput(loss=loss, logits=logits)

    @classmethod
    def from_base(cls, path: str, level1_labels: list[str] | None = None, descriptions: list[str] | None = None,
                  **config_overrides) -> MeanPoolingClassifier:
        """The pretrained encoder at ``path`` (a directory or hub id) with a new, randomly initialised
        head; with ``level1_labels`` a second head for them, with ``descriptions`` the similarity
        features to those phrasings (embedded here by the pretrained encoder)."""
        config = AutoConfig.from_pretrained(path, trust_remote_code=False, **config_overrides)
        setattr(config, POOLING_ATTRIBUTE, "mean")
        if level1_labels:
            setattr(config, LEVEL1_ATTRIBUTE, list(level1_labels))
        if descriptions:
            setattr(config, DESCRIPTIONS_ATTRIBUTE, len(descriptions))
        model = cls(config)
        from transformers.utils import logging

        verbosity = logging.get_verbosity()
        logging.set_verbosity_error()  # its unused pooler weights are left out on purpose: no warning
        try:
            pretrained = _without_pooler(AutoModel.from_pretrained, path, config=config, use_safetensors=True,
                                         trust_remote_code=False)
        finally:
            logging.set_verbosity(verbosity)
        model.encoder.load_state_dict(pretrained.state_dict())
        if descriptions:
            model.description_embeddings.copy_(embed_phrases(model.encoder, path, descriptions))
        return model

    @classmethod
    def from_checkpoint(cls, path: str) -> MeanPoolingClassifier:
        """A fine-tuned checkpoint written by ``save_pretrained`` (safetensors only)."""
        from safetensors.torch import load_file

        config = AutoConfig.from_pretrained(path, trust_remote_code=False)
        model = cls(config)
        model.load_state_dict(load_file(f"{path}/model.safetensors"))
        return model.eval()


@torch.no_grad()
def embed_phrases(encoder: PreTrainedModel, tokenizer_path: str, phrases: list[str], batch_size: int = 64) -> torch.Tensor:
    """Unit-length mean-pooled embeddings of ``phrases`` by ``encoder`` (as sentence-transformers reads
    all-MiniLM-L6-v2)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path, use_fast=True, trust_remote_code=False)
    was_training = encoder.training
    encoder.eval()
    rows = []
    for start in range(0, len(phrases), batch_size):
        batch = tokenizer(phrases[start:start + batch_size], padding=True, truncation=True, max_length=64,
                          return_tensors="pt")
        batch = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        hidden = encoder(**batch).last_hidden_state
        rows.append(nn.functional.normalize(masked_mean(hidden, batch["attention_mask"]), dim=-1))
    encoder.train(was_training)
    return torch.cat(rows)


def checkpoint_pooling(path: str) -> str | None:
    """``"mean"`` when ``path`` is a mean-pooling checkpoint, else None (also for paths that are not local)."""
    config_file = Path(path) / "config.json"
    if not config_file.is_file():
        return None
    try:
        return json.loads(config_file.read_text()).get(POOLING_ATTRIBUTE)
    except ValueError:
        return None
