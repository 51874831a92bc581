"""Distillation's config and targets, on runs written by hand (training a student: test_ensemble.py)."""

import json

import numpy as np
import pytest
from tiny_models import EXAMPLES, fake_run

from argvalues.contract import ID_COLUMN, LABELS, TEMPLATES, read_arguments
from argvalues.errors import ArgvaluesError
from argvalues.model_config import ScoringConfig
from trainer.distill import DistillConfig, check_teacher_runs, soft_targets

QUIET = lambda _: None  # noqa: E731


def scoring(recipe: dict) -> ScoringConfig:
    return ScoringConfig(thresholds=[0.5] * len(LABELS), threshold_strategy="global",
                         template=TEMPLATES["premise"], max_length=64, recipe=recipe)


@pytest.mark.parametrize("options, message", [
    (dict(epochs=0), "--epochs and --batch-size must be at least 1"),
    (dict(lr=1.0), r"--lr in \(0, 1\)"),
    (dict(validation_arguments="v.tsv"), "go together"),
    (dict(pooling="max"), r"--pooling must be one of \['model', 'mean'\], got 'max'"),
])
def test_impossible_options_are_refused(options, message):
    with pytest.raises(ArgvaluesError, match=message):
        DistillConfig(run="run", arguments="a.tsv", output="out", **options)


def test_centred_targets_keep_the_ensembles_labels_at_one_half_and_widen_the_margin():
    from trainer.distill import centred_targets

    probabilities = np.array([[0.30, 0.46, 0.50, 0.90], [0.45, 0.47, 0.10, 0.40]])
    thresholds = [0.46, 0.46, 0.2, 0.6]
    targets = centred_targets(probabilities, thresholds, 2.0)
    np.testing.assert_array_equal(targets > 0.5, probabilities > np.array(thresholds))
    assert targets[0, 1] == pytest.approx(0.5)
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    np.testing.assert_allclose(logit(targets), 2 * (logit(probabilities) - logit(np.array(thresholds))), rtol=1e-4)
    np.testing.assert_allclose(centred_targets(probabilities, [0.5] * 4, 1.0), probabilities, rtol=1e-5)


def test_gold_labels_move_only_the_labelled_arguments_targets():
    import pandas as pd

    from trainer.distill import with_gold_labels

    arguments = pd.DataFrame({ID_COLUMN: ["A1", "T1", "A2"]})  # T1: an unlabelled (test) argument
    targets = np.full((3, 20), 0.8, dtype=np.float32)
    gold = pd.DataFrame(np.zeros((2, 20), dtype=np.float32), index=["A2", "A1"], columns=LABELS)
    gold.loc["A2", LABELS[0]] = 1
    mixed = with_gold_labels(arguments, targets, gold, 0.25)
    assert np.allclose(mixed[0], 0.6) and np.allclose(mixed[1], 0.8)
    assert np.isclose(mixed[2, 0], 0.85) and np.allclose(mixed[2, 1:], 0.6)
    assert np.allclose(targets, 0.8)  # the ensemble's targets are left as they were
    with pytest.raises(ArgvaluesError, match=r"--gold-weight must lie in \[0, 1\]"):
        DistillConfig(run="run", arguments="a.tsv", output="out", gold_weight=1.5)


@pytest.mark.parametrize("sharpness", [0, -1, 21])
def test_sharpness_outside_its_range_is_refused(sharpness):
    with pytest.raises(ArgvaluesError, match=r"--sharpness must lie in \(0, 20\]"):
        DistillConfig(run="run", arguments="a.tsv", output="out", sharpness=sharpness)


def test_the_student_pools_as_the_run_did_unless_told_otherwise():
    config = DistillConfig(run="run", arguments="a.tsv", output="out")
    assert config.student_pooling(scoring({"pooling": "mean"})) == "mean"
    assert config.student_pooling(scoring({})) == "model"  # a run from before --pooling existed
    told = DistillConfig(run="run", arguments="a.tsv", output="out", model="base", pooling="model")
    assert told.student_pooling(scoring({"pooling": "mean"})) == "model"


def test_pooling_applies_only_to_a_student_started_afresh():
    # by default the student starts from the run's best fold model, which keeps its own pooling
    with pytest.raises(ArgvaluesError, match="--pooling applies to a student started afresh from --model"):
        DistillConfig(run="run", arguments="a.tsv", output="out", pooling="model")


def test_the_targets_are_the_out_of_fold_probabilities_in_the_arguments_order(tmp_path):
    run = fake_run(tmp_path / "run", seed=5)
    reordered = tmp_path / "arguments.tsv"
    arguments = read_arguments(EXAMPLES / "arguments.tsv").iloc[::-1]
    arguments.to_csv(reordered, sep="\t", index=False)
    frame, targets = soft_targets(DistillConfig(run=str(run.path), arguments=str(reordered), output="out"), QUIET)
    assert frame[ID_COLUMN].tolist() == arguments[ID_COLUMN].tolist()
    oof = run.read_out_of_fold()
    np.testing.assert_allclose(targets, oof.loc[arguments[ID_COLUMN], LABELS].to_numpy(), atol=1e-6)
    assert targets.dtype == np.float32


def test_with_join_the_targets_are_the_mean_over_the_runs(tmp_path):
    first, second = fake_run(tmp_path / "a", seed=1), fake_run(tmp_path / "b", seed=2)
    config = DistillConfig(run=str(first.path), join=[str(second.path)], arguments=str(EXAMPLES / "arguments.tsv"),
                           output="out")
    _, targets = soft_targets(config, QUIET)
    mean = (first.read_out_of_fold()[LABELS].to_numpy() + second.read_out_of_fold()[LABELS].to_numpy()) / 2
    np.testing.assert_allclose(targets, mean, atol=1e-6)


def test_runs_of_other_templates_join_as_input_views(tmp_path):
    """An ensemble over input views: the student learns the mean of runs that read the arguments
    through other templates, though one exported ensemble could not join them."""
    first, view = fake_run(tmp_path / "a", seed=1), fake_run(tmp_path / "b", seed=2, template="premise")
    config = DistillConfig(run=str(first.path), join=[str(view.path)], arguments=str(EXAMPLES / "arguments.tsv"),
                           output="out")
    _, targets = soft_targets(config, QUIET)
    mean = (first.read_out_of_fold()[LABELS].to_numpy() + view.read_out_of_fold()[LABELS].to_numpy()) / 2
    np.testing.assert_allclose(targets, mean, atol=1e-6)


def test_arguments_the_run_did_not_train_on_are_refused(tmp_path):
    run = fake_run(tmp_path / "run", seed=0)
    extra = tmp_path / "arguments.tsv"
    text = (EXAMPLES / "arguments.tsv").read_text()
    extra.write_text(text + "NEW1\tWe should X\tagainst\tbecause Y\n")
    with pytest.raises(ArgvaluesError, match="1 argument\\(s\\) have no out-of-fold probability"):
        soft_targets(DistillConfig(run=str(run.path), arguments=str(extra), output="out"), QUIET)


def test_a_teacher_from_other_runs_is_refused(tmp_path):
    first, second = fake_run(tmp_path / "a", seed=1), fake_run(tmp_path / "b", seed=2)
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    (teacher / "manifest.json").write_text(json.dumps({"ensemble": {"runs": [str(first.path.resolve())]}}))
    alone = DistillConfig(run=str(first.path), arguments="a.tsv", output="out", teacher=str(teacher))
    check_teacher_runs(alone)  # the teacher joined exactly --run
    joined = DistillConfig(run=str(first.path), join=[str(second.path)], arguments="a.tsv", output="out",
                           teacher=str(teacher))
    with pytest.raises(ArgvaluesError, match="name the same ones with --run and --join"):
        check_teacher_runs(joined)
    (teacher / "manifest.json").write_text(json.dumps({"ensemble": None}))  # one model, not an ensemble
    check_teacher_runs(joined)
