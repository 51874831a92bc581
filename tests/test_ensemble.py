"""`argvalues export --ensemble [--join RUN]`: the fold models of one run or several as one ONNX model
(mean of probabilities), and students distilled from them."""

import json

import numpy as np
import pytest
from tiny_models import EXAMPLES, make_base_model

from argvalues.contract import read_arguments
from argvalues.errors import ModelDirError
from export.onnx import ExportOptions, export_model
from trainer.config import TrainConfig
from trainer.cv import run_cross_validation

#: One epoch of a tiny random model under the default cb-ntr loss leaves every probability so low
#: that both runs' best global threshold is the grid's floor; the positive weights give runs whose
#: thresholds differ, which the join tests need to tell the joined choice from the first run's.
TINY_RUN_LOSS = "bce-pos-weight"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ensemble")
    base = make_base_model("bert", root / "base")
    config = TrainConfig(arguments=str(EXAMPLES / "arguments.tsv"), labels=str(EXAMPLES / "labels.tsv"),
                         output=str(root / "run"), model=str(base), folds=3, epochs=1, batch_size=8,
                         max_length=48, lr=1e-3, loss=TINY_RUN_LOSS)
    run_cross_validation(config, log=lambda _: None)
    return root / "run"


@pytest.mark.slow
def test_ensemble_outputs_the_mean_of_the_fold_probabilities(tiny_run, tmp_path):
    from argvalues.model_config import ScoringConfig
    from scorer.model import ScoringModel
    from trainer.evaluation import checkpoint_probabilities

    manifest = export_model(tiny_run, tmp_path / "model", ExportOptions(ensemble=True), log=lambda _: None)
    members = manifest["ensemble"]["members"]
    assert [m["fold"] for m in members] == [0, 1, 2]
    scoring = ScoringConfig.load(tmp_path / "model")
    assert manifest["ensemble"]["thresholds"] == scoring.thresholds
    arguments = read_arguments(EXAMPLES / "arguments.tsv")
    onnx = ScoringModel(tmp_path / "model", device="cpu").probabilities(arguments)
    checkpoints = [tiny_run / "folds" / f"fold-{k}" / "model" for k in range(3)]
    expected = checkpoint_probabilities(checkpoints, arguments, scoring)
    np.testing.assert_allclose(onnx, expected, atol=1e-5)
    single = checkpoint_probabilities(checkpoints[:1], arguments, scoring)
    assert np.abs(onnx - single).max() > 1e-4  # really a mean (parity above is to 1e-5), not one member
    assert manifest["parity"]["max_abs_difference"] < 1e-4


@pytest.mark.slow
def test_ensemble_scores_through_the_unchanged_scorer(tiny_run, tmp_path):
    from click.testing import CliRunner

    from scorer.cli import score

    export_model(tiny_run, tmp_path / "model", ExportOptions(ensemble=True), log=lambda _: None)
    result = CliRunner().invoke(score, ["--model", str(tmp_path / "model"), "--quiet", str(EXAMPLES / "to-score.tsv")])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 13


@pytest.mark.slow
def test_ensemble_needs_a_run_with_folds(tiny_run, tmp_path):
    import shutil

    shutil.copytree(tiny_run / "best", tmp_path / "lone-checkpoint")
    with pytest.raises(ModelDirError, match="--ensemble needs a training run directory"):
        export_model(tmp_path / "lone-checkpoint", tmp_path / "model", ExportOptions(ensemble=True), log=lambda _: None)
    assert not (tmp_path / "model").exists()


@pytest.mark.slow
def test_distilled_student_learns_the_ensembles_probabilities(tiny_run, tmp_path):
    import pandas as pd
    from tiny_models import make_base_model

    from argvalues.contract import LABELS
    from scorer.model import ScoringModel
    from trainer.distill import DistillConfig, run_distillation, soft_targets

    export_model(tiny_run, tmp_path / "teacher", ExportOptions(ensemble=True), log=lambda _: None)
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
    # it reads texts alone too, at thresholds where a premise alone gets each value as often as its argument does
    from argvalues.model_config import ARGUMENTS, TEXT, ScoringConfig
    from trainer.config import TrainConfig
    from trainer.evaluation import checkpoint_probabilities

    student = ScoringConfig.load(tmp_path / "student" / "best")
    assert TEXT in student.readings and len(student.text_thresholds) == len(LABELS)
    whole, alone = (checkpoint_probabilities([tmp_path / "student" / "best"], arguments, student,
                                                     TrainConfig.eval_batch_size, reading)
                    for reading in (ARGUMENTS, TEXT))
    labelled_whole = (whole >= np.asarray(student.thresholds)).sum(axis=0)
    labelled_alone = (alone >= np.asarray(student.text_thresholds)).sum(axis=0)
    assert np.abs(labelled_whole - labelled_alone).max() <= 1  # equal, but for ties and the quantile's interpolation
    manifest = export_model(tmp_path / "student", tmp_path / "student-model", log=lambda _: None)
    assert ScoringConfig.load(tmp_path / "student-model").text_thresholds == student.text_thresholds
    assert manifest["parity"]["max_abs_difference"] < 1e-4


@pytest.mark.slow
def test_by_default_the_student_starts_from_the_runs_best_fold_model(tiny_run, tmp_path):
    from safetensors.torch import load_file

    from trainer.distill import DistillConfig, run_distillation

    messages = []
    # a learning rate too small to move the weights: the student is what it started from
    config = DistillConfig(run=str(tiny_run), arguments=str(EXAMPLES / "arguments.tsv"), output=str(tmp_path / "student"),
                           epochs=1, batch_size=8, lr=1e-12)
    run_distillation(config, log=messages.append)
    best = load_file(tiny_run / "best" / "model.safetensors")
    student = load_file(tmp_path / "student" / "best" / "model.safetensors")
    assert student.keys() == best.keys()
    assert all(np.allclose(student[name].numpy(), best[name].numpy(), atol=1e-6) for name in best)
    assert any(m.startswith(f"distilling into the best fold model ({tiny_run / 'best'})") for m in messages)
    scoring = json.loads((tmp_path / "student" / "best" / "argvalues.json").read_text())
    run_scoring = json.loads((tiny_run / "best" / "argvalues.json").read_text())
    assert scoring["recipe"]["started_from"] == "best fold" and scoring["base_model"] == run_scoring["base_model"]

    # --model starts it afresh: a new head on the base model
    fresh = DistillConfig(**{**vars(config), "output": str(tmp_path / "fresh"), "model": str(tiny_run.parent / "base")})
    run_distillation(fresh, log=lambda _: None)
    head = load_file(tmp_path / "fresh" / "best" / "model.safetensors")["classifier.weight"].numpy()
    assert not np.allclose(head, best["classifier.weight"].numpy(), atol=1e-3)


def test_without_a_teacher_the_fold_models_label_the_unlabelled_arguments(tiny_run):
    from argvalues.model_config import ScoringConfig
    from trainer.distill import DistillConfig, soft_targets
    from trainer.evaluation import checkpoint_probabilities
    from trainer.run_dir import RunDir

    more = EXAMPLES / "to-score.tsv"
    config = DistillConfig(run=str(tiny_run), arguments=[], output="unused", unlabelled=[str(more)])
    arguments, targets = soft_targets(config, log=lambda _: None)
    extra = read_arguments(more)
    assert len(arguments) == 60 + len(extra)  # the run's own arguments (from its records), then the unlabelled
    folds = [fold.model for fold in RunDir(tiny_run).finished_folds()]
    scoring = ScoringConfig.load(tiny_run / "best")
    np.testing.assert_allclose(targets[60:], checkpoint_probabilities(folds, extra, scoring), atol=1e-6)


@pytest.fixture(scope="module")
def second_run(tiny_run):
    """Another seed of the same recipe: other fold models, another split into folds."""
    config = TrainConfig(arguments=str(EXAMPLES / "arguments.tsv"), labels=str(EXAMPLES / "labels.tsv"),
                         output=str(tiny_run.parent / "run-seed-7"), model=str(tiny_run.parent / "base"), folds=3,
                         epochs=1, batch_size=8, max_length=48, lr=1e-3, seed=7, loss=TINY_RUN_LOSS)
    run_cross_validation(config, log=lambda _: None)
    return tiny_run.parent / "run-seed-7"


@pytest.mark.slow
def test_joined_out_of_fold_is_the_mean_of_the_runs_aligned_by_argument(tiny_run, second_run):
    import pandas as pd

    from argvalues.contract import LABELS, read_labelled_arguments
    from trainer.run_dir import joined_out_of_fold

    targets, probabilities, folds = joined_out_of_fold([tiny_run, second_run])
    first, second = (pd.read_csv(run / "oof-probabilities.tsv", sep="\t").set_index("Argument ID")
                     for run in (tiny_run, second_run))
    assert not np.array_equal(first["fold"].to_numpy(), second.loc[first.index, "fold"].to_numpy())
    expected = (first[LABELS].to_numpy() + second.loc[first.index, LABELS].to_numpy()) / 2
    np.testing.assert_allclose(probabilities, expected, atol=1e-6)
    np.testing.assert_array_equal(folds, first["fold"].to_numpy())
    arguments, labels = read_labelled_arguments(EXAMPLES / "arguments.tsv", EXAMPLES / "labels.tsv")
    row = {argument_id: k for k, argument_id in enumerate(arguments["Argument ID"])}
    np.testing.assert_array_equal(targets, labels[[row[i] for i in first.index]])


@pytest.mark.slow
def test_export_join_ensembles_every_fold_of_both_runs_at_the_joined_thresholds(tiny_run, second_run, tmp_path):
    from argvalues.model_config import ScoringConfig
    from scorer.model import ScoringModel
    from trainer.evaluation import checkpoint_probabilities
    from trainer.run_dir import joined_thresholds

    manifest = export_model(tiny_run, tmp_path / "model", ExportOptions(ensemble=True, join=(second_run,)),
                            log=lambda _: None)
    members = manifest["ensemble"]["members"]
    assert [(m["run"], m["fold"]) for m in members] == [(str(run.resolve()), k) for run in (tiny_run, second_run)
                                                         for k in range(3)]
    choice = joined_thresholds([tiny_run, second_run], "global")
    scoring = ScoringConfig.load(tmp_path / "model")
    assert scoring.thresholds == manifest["ensemble"]["thresholds"] == choice["thresholds"]
    assert scoring.thresholds != ScoringConfig.load(tiny_run / "best").thresholds  # re-chosen, not the first run's
    arguments = read_arguments(EXAMPLES / "arguments.tsv")
    checkpoints = [run / "folds" / f"fold-{k}" / "model" for run in (tiny_run, second_run) for k in range(3)]
    np.testing.assert_allclose(ScoringModel(tmp_path / "model", device="cpu").probabilities(arguments),
                               checkpoint_probabilities(checkpoints, arguments, scoring), atol=1e-5)


@pytest.mark.slow
def test_join_refuses_what_cannot_make_one_ensemble(tiny_run, second_run, tmp_path):
    import shutil

    with pytest.raises(ModelDirError, match="use it with --ensemble"):
        export_model(tiny_run, tmp_path / "model", ExportOptions(join=(second_run,)), log=lambda _: None)
    with pytest.raises(ModelDirError, match="names a run twice"):
        export_model(tiny_run, tmp_path / "model", ExportOptions(ensemble=True, join=(tiny_run,)), log=lambda _: None)
    other = tmp_path / "other-template"
    shutil.copytree(second_run, other)
    config = json.loads((other / "run-config.json").read_text())
    (other / "run-config.json").write_text(json.dumps({**config, "template": "premise"}))
    with pytest.raises(ModelDirError, match="template 'premise' vs 'premise-stance-conclusion'"):
        export_model(tiny_run, tmp_path / "model", ExportOptions(ensemble=True, join=(other,)), log=lambda _: None)
    assert not (tmp_path / "model").exists()


@pytest.mark.slow
def test_distilling_a_joined_ensemble_learns_the_mean_and_takes_its_thresholds(tiny_run, second_run, tmp_path):
    import pandas as pd

    from argvalues.model_config import ScoringConfig
    from trainer.distill import DistillConfig, run_distillation, soft_targets
    from trainer.run_dir import joined_out_of_fold, joined_thresholds

    config = DistillConfig(run=str(tiny_run), join=[str(second_run)], arguments=str(EXAMPLES / "arguments.tsv"),
                           output=str(tmp_path / "student"), model=str(tiny_run.parent / "base"), epochs=1,
                           batch_size=8)
    arguments, targets = soft_targets(config, log=lambda _: None)
    _, joined, _ = joined_out_of_fold([tiny_run, second_run])
    oof_ids = pd.read_csv(tiny_run / "oof-probabilities.tsv", sep="\t")["Argument ID"]
    order = {argument_id: k for k, argument_id in enumerate(oof_ids)}
    np.testing.assert_allclose(targets, joined[[order[i] for i in arguments["Argument ID"]]], atol=1e-6)
    run_distillation(config, log=lambda _: None)
    student = ScoringConfig.load(tmp_path / "student" / "best")
    # its targets were centred on the joined thresholds (the default --sharpness): its own threshold is 0.5
    assert student.recipe["centred_on_thresholds"] == joined_thresholds([tiny_run, second_run], "global")["thresholds"]
    assert student.thresholds == [0.5] * len(student.thresholds) and student.recipe["sharpness"] == config.sharpness


@pytest.mark.slow
def test_a_view_of_another_template_joins_the_student_each_run_reading_its_own_way(tiny_run):
    """An ensemble over input views: a run on the premise alone joins the default run's student;
    the unlabelled arguments get the mean of every fold model, each fed through its run's template
    (weighted by members), and the student keeps --run's template."""
    from argvalues.model_config import ScoringConfig
    from trainer.distill import DistillConfig, soft_targets
    from trainer.evaluation import checkpoint_probabilities
    from trainer.run_dir import RunDir

    view = tiny_run.parent / "run-premise"
    run_cross_validation(TrainConfig(arguments=str(EXAMPLES / "arguments.tsv"), labels=str(EXAMPLES / "labels.tsv"),
                                     output=str(view), model=str(tiny_run.parent / "base"), folds=2, epochs=1,
                                     batch_size=8, max_length=48, lr=1e-3, template="premise", distill=False),
                         log=lambda _: None)
    more = EXAMPLES / "to-score.tsv"
    config = DistillConfig(run=str(tiny_run), join=[str(view)], arguments=[], output="unused", unlabelled=[str(more)])
    _, targets = soft_targets(config, log=lambda _: None)
    extra = read_arguments(more)
    means = []
    for run in (tiny_run, view):
        scoring = ScoringConfig.load(run / "best")
        means.append(checkpoint_probabilities([f.model for f in RunDir(run).finished_folds()], extra, scoring))
    assert ScoringConfig.load(view / "best").template.text == "{Premise}"
    np.testing.assert_allclose(targets[60:], (3 * means[0] + 2 * means[1]) / 5, atol=1e-6)
    assert not np.allclose(means[0], means[1], atol=1e-3)


@pytest.mark.slow
def test_export_cli_refuses_joining_an_unfinished_run_in_one_line(tiny_run, tmp_path):
    from click.testing import CliRunner

    from export.cli import export

    (tmp_path / "unfinished" / "folds").mkdir(parents=True)
    result = CliRunner().invoke(export, [str(tiny_run), "--ensemble", "--join", str(tmp_path / "unfinished"),
                                         "--output", str(tmp_path / "model")])
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit)  # no traceback
    message = result.output.strip()
    assert message.startswith("Error:") and len(message.splitlines()) == 1
    assert "not a finished training run" in message
    assert not (tmp_path / "model").exists()


@pytest.mark.slow
def test_distill_refuses_a_teacher_of_other_runs(tiny_run, second_run, tmp_path):
    from argvalues.errors import ArgvaluesError
    from trainer.distill import DistillConfig, soft_targets

    export_model(tiny_run, tmp_path / "joined", ExportOptions(ensemble=True, join=(second_run,)), log=lambda _: None)
    alone = DistillConfig(run=str(tiny_run), arguments=str(EXAMPLES / "arguments.tsv"), output=str(tmp_path / "s"),
                          teacher=str(tmp_path / "joined"), unlabelled=[str(EXAMPLES / "to-score.tsv")])
    with pytest.raises(ArgvaluesError, match="name the same ones with --run and --join"):
        soft_targets(alone, log=lambda _: None)
    both = DistillConfig(run=str(second_run), join=[str(tiny_run)], arguments=str(EXAMPLES / "arguments.tsv"),
                         output=str(tmp_path / "s"), teacher=str(tmp_path / "joined"),
                         unlabelled=[str(EXAMPLES / "to-score.tsv")])
    arguments, _ = soft_targets(both, log=lambda _: None)  # the same runs in another order are the same ensemble
    assert len(arguments) == 60 + 12


@pytest.mark.slow
def test_distill_join_without_the_training_labels_fails_before_writing_anything(tiny_run, second_run, tmp_path):
    import shutil

    from trainer.distill import DistillConfig, run_distillation

    moved = tmp_path / "run-whose-labels-moved"
    shutil.copytree(tiny_run, moved)
    config = json.loads((moved / "run-config.json").read_text())
    (moved / "run-config.json").write_text(json.dumps({**config, "labels": str(tmp_path / "gone.tsv")}))
    student = DistillConfig(run=str(moved), join=[str(second_run)], arguments=str(EXAMPLES / "arguments.tsv"),
                            output=str(tmp_path / "student"), model=str(tiny_run.parent / "base"), epochs=1)
    with pytest.raises(ModelDirError, match="the training labels are needed"):
        run_distillation(student, log=lambda _: None)
    assert not (tmp_path / "student").exists()


@pytest.mark.slow
def test_an_ensemble_too_large_for_one_onnx_file_keeps_its_tensors_beside_it(tiny_run, tmp_path, monkeypatch):
    """Protobuf cannot write a model over 2 GB (ten all-mpnet-base-v2 members are 4.4 GB): past
    EXTERNAL_DATA_BYTES the tensors go to model.onnx.data, which the scorer, its run fingerprint
    and the Ray workers take with the graph."""
    import os

    import export.ensemble
    from argvalues.digest import sha256_of
    from scorer.model import ScoringModel
    from scorer.ray_engine import _model_files
    from scorer.score import ScoreOptions, run_fingerprint

    arguments = read_arguments(EXAMPLES / "arguments.tsv")
    export_model(tiny_run, tmp_path / "whole", ExportOptions(ensemble=True), log=lambda _: None)
    monkeypatch.setattr(export.ensemble, "EXTERNAL_DATA_BYTES", 0)
    manifest = export_model(tiny_run, tmp_path / "model", ExportOptions(ensemble=True, variants=("int8", "optimized")),
                            log=lambda _: None)

    graph, data = tmp_path / "model" / "model.onnx", tmp_path / "model" / "model.onnx.data"
    assert graph.stat().st_size < (tmp_path / "whole" / "model.onnx").stat().st_size / 4 < data.stat().st_size
    assert manifest["onnx"]["external_data"] == {"file": "model.onnx.data", "sha256": sha256_of(data),
                                                 "bytes": data.stat().st_size}
    assert "external_data" not in json.loads((tmp_path / "whole" / "manifest.json").read_text())["onnx"]
    model = ScoringModel(tmp_path / "model", device="cpu", variant="fp32")
    np.testing.assert_allclose(model.probabilities(arguments),
                               ScoringModel(tmp_path / "whole", device="cpu", variant="fp32").probabilities(arguments),
                               atol=1e-6)
    assert ScoringModel(tmp_path / "model", device="cpu", variant="int8").probabilities(arguments).shape == (60, 20)
    optimized = tmp_path / "model" / "model_optimized.onnx"  # Optimum keeps the tensors outside too, same naming
    assert ScoringModel(tmp_path / "model", device="cpu", variant="optimized").probabilities(arguments).shape == (60, 20)
    assert set(_model_files(tmp_path / "model", optimized)) >= {"model_optimized.onnx", "model_optimized.onnx.data"}
    assert {"model.onnx", "model.onnx.data"} <= set(run_fingerprint([], model, ScoreOptions())["model"])
    assert {"model.onnx", "model.onnx.data"} <= set(_model_files(tmp_path / "model", graph))
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "model").stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's 0700
    assert data.stat().st_mode & 0o777 == 0o666 & ~umask  # not onnx's 0600


def test_onnx_files_finds_the_tensors_under_either_name_a_writer_gives_them(tmp_path):
    from argvalues.variants import onnx_files

    graph = tmp_path / "model.onnx"
    graph.write_bytes(b"graph")
    assert onnx_files(graph) == [graph]
    (tmp_path / "model.onnx_data").write_bytes(b"tensors")  # Optimum's exporter, for one model over 2 GB
    (tmp_path / "model_quantized.onnx.data").write_bytes(b"another model's")
    assert onnx_files(graph) == [graph, tmp_path / "model.onnx_data"]
