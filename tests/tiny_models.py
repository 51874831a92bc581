"""Tiny random-init models of the notebook's model families, built offline in a second or two."""

from __future__ import annotations

import re
from pathlib import Path

from argvalues.contract import LABELS, TEMPLATES
from argvalues.model_config import ScoringConfig

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FAMILIES = ("bert", "roberta", "distilbert", "deberta-v2", "mpnet")
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
HIDDEN = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def _vocabulary() -> list[str]:
    words = set()
    for path in EXAMPLES.glob("*.tsv"):
        words.update(re.findall(r"\w+|[^\w\s]", path.read_text().lower()))
    return SPECIAL + sorted(words)


def tiny_tokenizer(family: str):
    """A word-level fast tokenizer; RoBERTa, DistilBERT and MPNet get no token_type_ids, like the real ones."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocabulary = {token: i for i, token in enumerate(_vocabulary())}
    tokenizer = Tokenizer(models.WordLevel(vocabulary, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocabulary["[CLS]"]), ("[SEP]", vocabulary["[SEP]"])],
    )
    input_names = ["input_ids", "attention_mask"]
    if family in ("bert", "deberta-v2"):
        input_names.insert(1, "token_type_ids")
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, model_input_names=input_names, pad_token="[PAD]", unk_token="[UNK]",
        cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
    )


def tiny_config(family: str, vocab_size: int):
    from transformers import BertConfig, DebertaV2Config, DistilBertConfig, MPNetConfig, RobertaConfig

    labels = dict(num_labels=len(LABELS), problem_type="multi_label_classification",
                  id2label=dict(enumerate(LABELS)), label2id={label: i for i, label in enumerate(LABELS)})
    if family == "bert":
        return BertConfig(vocab_size=vocab_size, max_position_embeddings=160, pad_token_id=0, **HIDDEN, **labels)
    if family == "roberta":
        return RobertaConfig(vocab_size=vocab_size, max_position_embeddings=162, type_vocab_size=1, pad_token_id=0,
                             bos_token_id=2, eos_token_id=3, **HIDDEN, **labels)
    if family == "distilbert":
        return DistilBertConfig(vocab_size=vocab_size, max_position_embeddings=160, dim=32, n_layers=2, n_heads=2,
                                hidden_dim=64, pad_token_id=0, **labels)
    if family == "deberta-v2":
        return DebertaV2Config(vocab_size=vocab_size, max_position_embeddings=160, type_vocab_size=2, pad_token_id=0,
                               relative_attention=True, pos_att_type=["p2c", "c2p"], position_buckets=16,
                               max_relative_positions=64, **HIDDEN, **labels)
    if family == "mpnet":  # all-mpnet-base-v2's architecture: relative position buckets, no token types
        return MPNetConfig(vocab_size=vocab_size, max_position_embeddings=162, pad_token_id=0, bos_token_id=2,
                           eos_token_id=3, **HIDDEN, **labels)
    raise ValueError(family)


def make_base_model(family: str, directory: Path, seed: int = 0) -> Path:
    """A random-init base model directory (safetensors + tokenizer), usable as ``--model``."""
    import torch
    from transformers import AutoModelForSequenceClassification

    tokenizer = tiny_tokenizer(family)
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_config(tiny_config(family, len(tokenizer)))
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return directory


def make_checkpoint(family: str, directory: Path, threshold: float = 0.5, template: str = "premise-stance-conclusion",
                    max_length: int = 64, seed: int = 0, reads_texts: bool = False) -> Path:
    """A base model plus the scoring config a trained checkpoint carries: ready for export.
    ``reads_texts``: recorded as trained to read a text alone too (as a student learning both readings is)."""
    from argvalues.model_config import TEXT_TEMPLATE

    make_base_model(family, directory, seed)
    ScoringConfig(thresholds=[threshold] * len(LABELS), threshold_strategy="global",
                  template=TEMPLATES[template], max_length=max_length, base_model=f"tiny-{family}",
                  text_template=TEXT_TEMPLATE if reads_texts else None).save(directory)
    return directory


def fake_run(path: Path, seed: int, template: str = "premise-stance-conclusion", folds: int = 3):
    """A finished run's records without its models (a ``RunDir``): its config and random out-of-fold
    probabilities for the example arguments, in their order, with fold ``row % folds``."""
    import numpy as np

    from argvalues.contract import ID_COLUMN, read_arguments
    from trainer.config import TrainConfig
    from trainer.run_dir import RunDir

    run = RunDir(path)
    run.path.mkdir(parents=True)
    run.write_config(TrainConfig(arguments=str(EXAMPLES / "arguments.tsv"), labels=str(EXAMPLES / "labels.tsv"),
                                 output=str(path), template=template, seed=seed, resume=True))
    arguments = read_arguments(EXAMPLES / "arguments.tsv")
    probabilities = np.random.default_rng(seed).random((len(arguments), len(LABELS)), dtype=np.float32)
    run.write_out_of_fold(arguments[ID_COLUMN], probabilities, np.arange(len(arguments)) % folds)
    return run
