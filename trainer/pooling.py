"""Mean pooling for ``--pooling mean``: the classifier head reads the mean of the last hidden states.

``AutoModelForSequenceClassification`` classifies from the first token (BERT through its pooler
layer). Sentence-embedding models such as all-MiniLM-L6-v2 were trained to be read by the mean
over their tokens instead, and their pooler layer was never trained. This model is any
``AutoModel`` encoder plus masked mean pooling, dropout and a linear head. Its checkpoint is a
normal ``save_pretrained`` directory: the encoder's own config with ``argvalues_pooling: "mean"``
(how :func:`trainer.modeling.load_classifier` recognises it) and the weights under ``encoder.``
and ``classifier.``. It returns ``logits`` like the Hugging Face classifiers, so the Trainer, the
losses, Optimum's ONNX export (``onnx_export_from_model``) and the scorer treat both alike.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

POOLING_ATTRIBUTE = "argvalues_pooling"


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
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
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
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        encoder_inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            encoder_inputs["token_type_ids"] = token_type_ids
        hidden_states = self.encoder(**encoder_inputs).last_hidden_state
        logits = self.classifier(self.dropout(masked_mean(hidden_states, attention_mask)))
        loss = None
        if labels is not None:  # plain BCE, as the Hugging Face classifiers do for multi-label problems
            loss = nn.functional.binary_cross_entropy_with_logits(logits.float(), labels.float())
        return SequenceClassifierOutput(loss=loss, logits=logits)

    @classmethod
    def from_base(cls, path: str, **config_overrides) -> "MeanPoolingClassifier":
        """The pretrained encoder at ``path`` (a directory or hub id) with a new, randomly initialised head."""
        config = AutoConfig.from_pretrained(path, trust_remote_code=False, **config_overrides)
        setattr(config, POOLING_ATTRIBUTE, "mean")
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
        return model

    @classmethod
    def from_checkpoint(cls, path: str) -> "MeanPoolingClassifier":
        """A fine-tuned checkpoint written by ``save_pretrained`` (safetensors only)."""
        from safetensors.torch import load_file

        config = AutoConfig.from_pretrained(path, trust_remote_code=False)
        model = cls(config)
        model.load_state_dict(load_file(f"{path}/model.safetensors"))
        return model.eval()


def checkpoint_pooling(path: str) -> str | None:
    """``"mean"`` when ``path`` is a mean-pooling checkpoint, else None (also for paths that are not local)."""
    config_file = Path(path) / "config.json"
    if not config_file.is_file():
        return None
    try:
        return json.loads(config_file.read_text()).get(POOLING_ATTRIBUTE)
    except ValueError:
        return None
