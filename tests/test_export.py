import hashlib
import json

import numpy as np
import pytest

from argvalues.contract import read_arguments
from argvalues.errors import ExportParityError, ModelDirError
from export.onnx import export_model
from tiny_models import EXAMPLES, FAMILIES, make_checkpoint

QUIET = dict(log=lambda _: None)


def torch_probabilities(checkpoint, arguments):
    from argvalues.model_config import ScoringConfig
    from trainer.data import ArgumentDataset, predict_probabilities
    from trainer.modeling import load_classifier, load_tokenizer

    scoring = ScoringConfig.load(checkpoint)
    tokenizer = load_tokenizer(str(checkpoint))
    dataset = ArgumentDataset(arguments, scoring.template, tokenizer, scoring.max_length)
    return predict_probabilities(load_classifier(str(checkpoint)), dataset, tokenizer, batch_size=7)


@pytest.mark.parametrize("family", FAMILIES)
def test_export_matches_pytorch(family, tmp_path):
    """The notebook's model families: ONNX through the scorer equals PyTorch on real text."""
    from scorer.model import ScoringModel

    checkpoint = make_checkpoint(family, tmp_path / "checkpoint", max_length=24)
    manifest = export_model(checkpoint, tmp_path / "model", **QUIET)
    arguments = read_arguments(EXAMPLES / "arguments.tsv")
    onnx = ScoringModel(tmp_path / "model", device="cpu").probabilities(arguments, batch_size=5)
    expected = torch_probabilities(checkpoint, arguments)
    np.testing.assert_allclose(onnx, expected, atol=1e-5)
    assert onnx.std() > 0  # not a constant output that would match trivially
    assert manifest["parity"]["max_abs_difference"] <= 1e-4


def test_model_directory_is_self_contained(tmp_path):
    checkpoint = make_checkpoint("bert", tmp_path / "checkpoint", threshold=0.3)
    export_model(checkpoint, tmp_path / "model", **QUIET)
    model_dir = tmp_path / "model"
    for name in ("model.onnx", "config.json", "tokenizer.json", "argvalues.json", "manifest.json"):
        assert (model_dir / name).is_file(), name
    config = json.loads((model_dir / "config.json").read_text())
    assert config["id2label"]["0"] == "Self-direction: thought"
    scoring = json.loads((model_dir / "argvalues.json").read_text())
    assert scoring["thresholds"] == [0.3] * 20 and scoring["max_length"] == 64
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["onnx"]["sha256"] == hashlib.sha256((model_dir / "model.onnx").read_bytes()).hexdigest()
    assert {"torch", "transformers", "optimum", "onnxruntime-gpu"} <= set(manifest["versions"])
    assert manifest["source_checkpoint"] == str(checkpoint.resolve())


def test_parity_failure_leaves_nothing(tmp_path):
    checkpoint = make_checkpoint("bert", tmp_path / "checkpoint")
    with pytest.raises(ExportParityError, match="disagrees with PyTorch"):
        export_model(checkpoint, tmp_path / "model", atol=-1.0, **QUIET)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


def test_reexport_replaces_a_model_directory(tmp_path):
    checkpoint = make_checkpoint("bert", tmp_path / "checkpoint")
    export_model(checkpoint, tmp_path / "model", **QUIET)
    first = json.loads((tmp_path / "model" / "manifest.json").read_text())["created"]
    export_model(checkpoint, tmp_path / "model", **QUIET)
    assert (tmp_path / "model" / "manifest.json").is_file() and first


def test_refuses_to_overwrite_a_foreign_directory(tmp_path):
    checkpoint = make_checkpoint("bert", tmp_path / "checkpoint")
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    with pytest.raises(ModelDirError, match="not an argvalues model directory"):
        export_model(checkpoint, tmp_path / "precious", **QUIET)
    assert (tmp_path / "precious" / "notes.txt").read_text() == "keep me"


def test_source_must_be_a_run_or_checkpoint(tmp_path):
    with pytest.raises(ModelDirError, match="no such run or checkpoint"):
        export_model(tmp_path / "missing", tmp_path / "model", **QUIET)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelDirError, match="neither a training run"):
        export_model(tmp_path / "empty", tmp_path / "model", **QUIET)


def test_a_pickled_checkpoint_is_never_loaded(tmp_path):
    """Weights come only from safetensors: a pytorch_model.bin is refused, not unpickled."""
    import torch

    from trainer.modeling import load_classifier

    checkpoint = make_checkpoint("bert", tmp_path / "checkpoint")
    state = load_classifier(str(checkpoint)).state_dict()
    (checkpoint / "model.safetensors").unlink()
    torch.save(state, checkpoint / "pytorch_model.bin")
    with pytest.raises(ModelDirError, match=r"missing model.safetensors \(found pytorch_model.bin"):
        export_model(checkpoint, tmp_path / "model", **QUIET)
    with pytest.raises(ModelDirError):
        load_classifier(str(checkpoint))
    assert not (tmp_path / "model").exists()
