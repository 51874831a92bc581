"""The scoring config a model directory carries (argvalues.json)."""

import json

import pytest

from argvalues.contract import LABELS, TEMPLATES, InputTemplate
from argvalues.errors import ModelDirError
from argvalues.model_config import SCORING_CONFIG_NAME, ScoringConfig


def config(**changes) -> ScoringConfig:
    values = dict(thresholds=[0.3] * len(LABELS), threshold_strategy="global",
                  template=TEMPLATES["premise-stance-conclusion"], max_length=128)
    return ScoringConfig(**{**values, **changes})


def test_save_and_load_round_trip_every_field(tmp_path):
    saved = config(thresholds=[round(0.05 * k, 2) for k in range(len(LABELS))], threshold_strategy="per-label",
                   base_model="bert-base-uncased",
                   variants={"int8": {"file": "model_quantized.onnx", "default_ok": True}},
                   recipe={"lr": 2e-5, "folds": 5})
    path = saved.save(tmp_path)
    assert path == tmp_path / SCORING_CONFIG_NAME
    loaded = ScoringConfig.load(tmp_path)
    assert loaded == saved
    assert isinstance(loaded.template, InputTemplate)
    data = json.loads(path.read_text())
    assert data["labels"] == LABELS and data["format_version"] == 1
    assert data["template"] == {"text": "{Premise}", "text_pair": "{Stance} {Conclusion}"}


@pytest.mark.parametrize("changes, message", [
    (dict(labels=LABELS[::-1]), "differ from the ValueEval labels"),
    (dict(thresholds=[0.5] * 19), "19 thresholds for 20 labels"),
    (dict(thresholds=[0.5] * 19 + [1.5]), r"thresholds must lie in \[0, 1\]"),
    (dict(max_length=4), "max_length must be at least 8, got 4"),
])
def test_impossible_configs_are_refused(changes, message):
    with pytest.raises(ModelDirError, match=message):
        config(**changes)


def test_required_columns_are_the_id_and_the_templates_fields():
    assert config(template=TEMPLATES["premise"]).required_columns == ["Argument ID", "Premise"]
    assert config().required_columns == ["Argument ID", "Premise", "Stance", "Conclusion"]
    assert config(template=InputTemplate("{Argument ID}: {Premise}")).required_columns == ["Argument ID", "Premise"]


def test_a_directory_without_the_config_says_what_it_expected(tmp_path):
    with pytest.raises(ModelDirError, match=f"missing {SCORING_CONFIG_NAME}; is this an argvalues model directory"):
        ScoringConfig.load(tmp_path)


@pytest.mark.parametrize("text", ["{not json", json.dumps({"thresholds": [0.5] * 20}),
                                  json.dumps({**config().to_dict(), "template": {"text_pair": "{Premise}"}}),
                                  json.dumps({**config().to_dict(), "unknown_key": 1})])
def test_a_damaged_config_is_a_model_dir_error(tmp_path, text):
    (tmp_path / SCORING_CONFIG_NAME).write_text(text)
    with pytest.raises(ModelDirError, match="not a valid scoring config"):
        ScoringConfig.load(tmp_path)

