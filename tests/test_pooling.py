"""--pooling mean: the head reads the mean over real tokens; it trains, saves, exports and scores."""

import json

import numpy as np
import pytest
import torch
from tiny_models import EXAMPLES, FAMILIES, make_base_model, tiny_tokenizer

from argvalues.contract import LABELS, TEMPLATES, read_arguments
from argvalues.errors import ArgvaluesError
from argvalues.model_config import ScoringConfig
from trainer.config import TrainConfig
from trainer.modeling import load_classifier
from trainer.pooling import MeanPoolingClassifier

SENTENCES = ["we should ban fast food", "nature has a value of its own and future generations need it"]


def mean_pooled_checkpoint(family, directory):
    base = make_base_model(family, directory / "base")
    model = load_classifier(str(base), pooling="mean")
    checkpoint = directory / "checkpoint"
    model.save_pretrained(checkpoint)
    tiny_tokenizer(family).save_pretrained(checkpoint)
    ScoringConfig(thresholds=[0.5] * len(LABELS), threshold_strategy="global",
                  template=TEMPLATES["premise-stance-conclusion"], max_length=64, base_model="tiny").save(checkpoint)
    return base, model.eval(), checkpoint


def test_the_head_reads_the_mean_over_real_tokens_only(tmp_path):
    _, model, _ = mean_pooled_checkpoint("bert", tmp_path)
    tokenizer = tiny_tokenizer("bert")
    with torch.no_grad():
        batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
        together = model(**batch).logits
        short = tokenizer(SENTENCES[:1], return_tensors="pt")
        alone = model(**short).logits
        hidden = model.encoder(**short).last_hidden_state[0]
        by_hand = model.classifier(hidden.mean(0))
    assert batch["attention_mask"][0].sum() < batch["attention_mask"].shape[1]  # the short one was padded
    torch.testing.assert_close(together[0], alone[0], atol=1e-5, rtol=0)  # padding changes nothing
    torch.testing.assert_close(alone[0], by_hand, atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_base_model_keeps_its_encoder_weights_and_gets_a_new_head(family, tmp_path):
    from transformers import AutoModel

    base, model, checkpoint = mean_pooled_checkpoint(family, tmp_path)
    pretrained = AutoModel.from_pretrained(base).state_dict()
    for name, tensor in model.encoder.state_dict().items():
        torch.testing.assert_close(tensor, pretrained[name], atol=0, rtol=0)
    assert not any("pooler" in name for name in model.state_dict())  # BERT's first-token pooler is left out
    assert model.classifier.out_features == len(LABELS)
    assert json.loads((checkpoint / "config.json").read_text())["argvalues_pooling"] == "mean"


def test_a_checkpoint_loads_with_the_pooling_it_was_trained_with(tmp_path):
    _, model, checkpoint = mean_pooled_checkpoint("bert", tmp_path)
    loaded = load_classifier(str(checkpoint))  # pooling="model" is for base models only
    assert isinstance(loaded, MeanPoolingClassifier)
    batch = tiny_tokenizer("bert")(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).logits, model(**batch).logits, atol=0, rtol=0)


@pytest.mark.parametrize("family", FAMILIES)
def test_mean_pooling_exports_to_onnx_and_scores_like_pytorch(family, tmp_path):
    from export.onnx import export_model
    from scorer.model import ScoringModel
    from trainer.evaluation import checkpoint_probabilities

    _, model, checkpoint = mean_pooled_checkpoint(family, tmp_path)
    manifest = export_model(checkpoint, tmp_path / "model", log=lambda _: None)
    assert manifest["parity"]["max_abs_difference"] < 1e-5
    arguments = read_arguments(EXAMPLES / "arguments.tsv")
    onnx = ScoringModel(tmp_path / "model", device="cpu", variant="fp32").probabilities(arguments, batch_size=8)
    np.testing.assert_allclose(onnx, checkpoint_probabilities([checkpoint], arguments), atol=1e-5)
    # and the first-token classifier of the same base model says something else
    plain = load_classifier(str(tmp_path / "base"))
    assert not isinstance(plain, MeanPoolingClassifier)


def test_training_with_mean_pooling_is_recorded_and_exports(tmp_path):
    from export.onnx import ExportOptions, export_model
    from trainer.cv import run_cross_validation

    base = make_base_model("bert", tmp_path / "base")
    config = TrainConfig(arguments=str(EXAMPLES / "arguments.tsv"), labels=str(EXAMPLES / "labels.tsv"),
                         output=str(tmp_path / "run"), model=str(base), folds=2, epochs=2, batch_size=8,
                         max_length=48, lr=1e-3, pooling="mean")
    report = run_cross_validation(config, log=lambda _: None)
    recipe = json.loads((tmp_path / "run" / "best" / "argvalues.json").read_text())["recipe"]
    assert recipe["pooling"] == "mean" and report["config"]["pooling"] == "mean"
    assert isinstance(load_classifier(str(tmp_path / "run" / "best")), MeanPoolingClassifier)
    manifest = export_model(tmp_path / "run", tmp_path / "model", ExportOptions(ensemble=True), log=lambda _: None)
    assert len(manifest["ensemble"]["members"]) == 2 and manifest["parity"]["max_abs_difference"] < 1e-4


def test_pooling_is_checked_and_a_run_from_before_the_option_resumes(tmp_path):
    from trainer.cv import run_cross_validation
    from trainer.distill import DistillConfig

    with pytest.raises(ArgvaluesError, match="--pooling must be one of"):
        TrainConfig(arguments="a", labels="b", output="c", pooling="max")
    with pytest.raises(ArgvaluesError, match="--pooling must be one of"):
        DistillConfig(run="r", arguments="a", output="o", pooling="cls")
    run_scoring = ScoringConfig(thresholds=[0.5] * len(LABELS), threshold_strategy="global",
                                template=TEMPLATES["premise-stance-conclusion"], max_length=64, base_model="x",
                                recipe={"pooling": "mean"})
    assert DistillConfig(run="r", arguments="a", output="o").student_pooling(run_scoring) == "mean"
    assert DistillConfig(run="r", arguments="a", output="o", model="m", pooling="model").student_pooling(run_scoring) == "model"

    base = make_base_model("bert", tmp_path / "base")
    common = dict(arguments=str(EXAMPLES / "arguments.tsv"), labels=str(EXAMPLES / "labels.tsv"), model=str(base),
                  folds=2, epochs=1, batch_size=8, max_length=48, output=str(tmp_path / "run"))
    run_cross_validation(TrainConfig(pooling="model", **common), log=lambda _: None)
    saved = tmp_path / "run" / "run-config.json"
    older = {k: v for k, v in json.loads(saved.read_text()).items() if k != "pooling"}
    saved.write_text(json.dumps(older))  # a run recorded before --pooling existed: it pooled the model's way
    messages = []
    run_cross_validation(TrainConfig(resume=True, pooling="model", **common), log=messages.append)
    assert "fold 1: already done, kept" in messages
    from argvalues.errors import ResumeError

    with pytest.raises(ResumeError, match="pooling was 'model', now 'mean'"):
        run_cross_validation(TrainConfig(resume=True, pooling="mean", **common), log=lambda _: None)
