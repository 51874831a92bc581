"""Int8-aware distillation: the student's encoder learns with int8 simulated in its linear layers,
and its checkpoint stays a plain fp32 model that export quantizes as any other."""

import json

import numpy as np
import pytest
import torch
from tiny_models import EXAMPLES, make_base_model, make_checkpoint

from trainer.int8_aware import Int8AwareLinear, make_int8_aware, remove_int8_aware
from trainer.modeling import load_classifier


def test_every_linear_layer_of_the_encoder_and_only_those_learns_in_int8(tmp_path):
    model = load_classifier(str(make_checkpoint("bert", tmp_path / "checkpoint")))
    plain = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    encoder_linears = [name for name, module in model.named_modules()
                       if isinstance(module, torch.nn.Linear) and ".layer." in name]
    assert make_int8_aware(model) == len(encoder_linears) > 0
    wrapped = {name for name, module in model.named_modules() if isinstance(module, Int8AwareLinear)}
    assert len(wrapped) == len(encoder_linears) and not any("classifier" in name for name in wrapped)

    inputs = torch.randn(4, 7, 32) * 3
    layer = next(module for module in model.modules() if isinstance(module, Int8AwareLinear))
    layer.train()
    exact = torch.nn.functional.linear(inputs, layer.linear.weight, layer.linear.bias)
    rounded = layer(inputs)
    assert not torch.equal(rounded, exact)  # int8 is simulated...
    assert torch.allclose(rounded, exact, atol=0.1 * exact.abs().max().item())  # ...and stays close
    rounded.sum().backward()
    assert layer.linear.weight.grad is not None and layer.linear.weight.grad.abs().sum() > 0  # straight through

    remove_int8_aware(model)
    assert not any(isinstance(module, Int8AwareLinear) for module in model.modules())
    assert model.state_dict().keys() == plain.keys()


@pytest.mark.slow
def test_an_int8_aware_student_is_a_plain_checkpoint_that_exports(tmp_path):
    from export.onnx import export_model
    from trainer.config import TrainConfig
    from trainer.cv import run_cross_validation
    from trainer.distill import DistillConfig, run_distillation

    run = tmp_path / "run"
    run_cross_validation(TrainConfig(arguments=str(EXAMPLES / "arguments.tsv"), labels=str(EXAMPLES / "labels.tsv"),
                                     output=str(run), model=str(make_base_model("bert", tmp_path / "base")), folds=2,
                                     epochs=1, batch_size=8, max_length=48, lr=1e-3, distill=False), log=lambda _: None)
    messages = []
    run_distillation(DistillConfig(run=str(run), arguments=[], output=str(tmp_path / "student"), epochs=1,
                                   batch_size=8, int8_aware=True), log=messages.append)
    assert any(m.startswith("int8-aware: ") for m in messages)
    scoring = json.loads((tmp_path / "student" / "best" / "argvalues.json").read_text())
    assert scoring["recipe"]["int8_aware"] is True
    manifest = export_model(tmp_path / "student", tmp_path / "model", log=lambda _: None)
    assert manifest["parity"]["max_abs_difference"] < 1e-4
