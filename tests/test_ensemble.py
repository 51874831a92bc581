"""`argvalues export --ensemble`: the fold models of a run as one ONNX model (mean of probabilities)."""

import json

import numpy as np
import pytest

from argvalues.contract import read_arguments
from argvalues.errors import ModelDirError
from export.onnx import export_model
from tiny_models import EXAMPLES, make_base_model
from trainer.config import TrainConfig
from trainer.cv import run_cross_validation


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ensemble")
    base = make_base_model("bert", root / "base")
    config = TrainConfig(arguments=str(EXAMPLES / "arguments.tsv"), labels=str(EXAMPLES / "labels.tsv"),
                         output=str(root / "run"), model=str(base), folds=3, epochs=1, batch_size=8,
                         max_length=48, lr=1e-3)
    run_cross_validation(config, log=lambda _: None)
    return root / "run"


def test_ensemble_outputs_the_mean_of_the_fold_probabilities(tiny_run, tmp_path):
    from argvalues.model_config import ScoringConfig
    from export.ensemble import pytorch_mean_probabilities
    from scorer.model import ScoringModel

    manifest = export_model(tiny_run, tmp_path / "model", ensemble=True, log=lambda _: None)
    members = manifest["ensemble"]["members"]
    assert [m["fold"] for m in members] == [0, 1, 2]
    scoring = ScoringConfig.load(tmp_path / "model")
    assert manifest["ensemble"]["thresholds"] == scoring.thresholds
    arguments = read_arguments(EXAMPLES / "arguments.tsv")
    onnx = ScoringModel(tmp_path / "model", device="cpu").probabilities(arguments)
    checkpoints = [tiny_run / "folds" / f"fold-{k}" / "model" for k in range(3)]
    expected = pytorch_mean_probabilities(checkpoints, arguments, scoring)
    np.testing.assert_allclose(onnx, expected, atol=1e-5)
    single = pytorch_mean_probabilities(checkpoints[:1], arguments, scoring)
    assert np.abs(onnx - single).max() > 1e-4  # really a mean (parity above is to 1e-5), not one member
    assert manifest["parity"]["max_abs_difference"] < 1e-4


def test_ensemble_scores_through_the_unchanged_scorer(tiny_run, tmp_path):
    from click.testing import CliRunner

    from scorer.cli import score

    export_model(tiny_run, tmp_path / "model", ensemble=True, log=lambda _: None)
    result = CliRunner().invoke(score, ["--model", str(tmp_path / "model"), "--quiet", str(EXAMPLES / "to-score.tsv")])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 13


def test_ensemble_needs_a_run_with_folds(tiny_run, tmp_path):
    import shutil

    shutil.copytree(tiny_run / "best", tmp_path / "lone-checkpoint")
    with pytest.raises(ModelDirError, match="--ensemble needs a training run directory"):
        export_model(tmp_path / "lone-checkpoint", tmp_path / "model", ensemble=True, log=lambda _: None)
    assert not (tmp_path / "model").exists()


def test_distilled_student_learns_the_ensembles_probabilities(tiny_run, tmp_path):
    import pandas as pd

    from argvalues.contract import LABELS
    from scorer.model import ScoringModel
    from tiny_models import make_base_model
    from trainer.distill import DistillConfig, run_distillation, soft_targets

    export_model(tiny_run, tmp_path / "teacher", ensemble=True, log=lambda _: None)
    config = DistillConfig(run=str(tiny_run), arguments=str(EXAMPLES / "arguments.tsv"), output=str(tmp_path / "student"),
                           teacher=str(tmp_path / "teacher"), unlabelled=[str(EXAMPLES / "to-score.tsv")],
                           validation_arguments=str(EXAMPLES / "arguments.tsv"),
                           validation_labels=str(EXAMPLES / "labels.tsv"),
                           model=str(make_base_model("bert", tmp_path / "base")), epochs=1, batch_size=8,
                           pooling="model")  # the run's folds mean-pool (the default): the student may differ
    arguments, targets = soft_targets(config, log=lambda _: None)
    assert len(arguments) == 60 + 12
    oof = pd.read_csv(tiny_run / "oof-probabilities.tsv", sep="\t").set_index("Argument ID")
    np.testing.assert_allclose(targets[:60], oof.loc[arguments["Argument ID"][:60], LABELS].to_numpy(), atol=1e-6)
    teacher = ScoringModel(tmp_path / "teacher", device="cpu").probabilities(read_arguments(EXAMPLES / "to-score.tsv"))
    np.testing.assert_allclose(targets[60:], teacher, atol=1e-6)

    report = run_distillation(config, log=lambda _: None)
    assert report["rows"] == 72 and 0 <= report["validation"]["f1"] <= 1
    assert json.loads((tiny_run / "best" / "config.json").read_text())["argvalues_pooling"] == "mean"
    assert json.loads((tmp_path / "student" / "best" / "argvalues.json").read_text())["recipe"]["pooling"] == "model"
    assert "argvalues_pooling" not in json.loads((tmp_path / "student" / "best" / "config.json").read_text())
    manifest = export_model(tmp_path / "student", tmp_path / "student-model", log=lambda _: None)
    assert manifest["parity"]["max_abs_difference"] < 1e-4


def test_unlabelled_arguments_need_a_teacher():
    from argvalues.errors import ArgvaluesError
    from trainer.distill import DistillConfig

    with pytest.raises(ArgvaluesError, match="--unlabelled needs --teacher"):
        DistillConfig(run="r", arguments="a", output="o", unlabelled=["u.tsv"])
