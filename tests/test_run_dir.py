"""The run directory's layout and records, on runs written by hand (no training)."""

import json

import numpy as np
import pandas as pd
import pytest
from tiny_models import EXAMPLES, fake_run

from argvalues.contract import ID_COLUMN, LABELS, read_labelled_arguments
from argvalues.errors import ArgvaluesError, ModelDirError
from trainer.config import TrainConfig
from trainer.run_dir import (
    CheckpointDir,
    RunDir,
    joined_out_of_fold,
    joined_thresholds,
    mean_out_of_fold,
    write_probabilities,
)


def test_config_round_trips_and_resume_is_not_recorded(tmp_path):
    run = fake_run(tmp_path / "run", seed=3)
    recorded = json.loads(run.config_path.read_text())
    assert "resume" not in recorded and recorded["seed"] == 3
    config = run.config()
    assert isinstance(config, TrainConfig) and config.seed == 3 and config.resume is False
    assert config.to_dict() == {**recorded, "resume": False}


def test_options_a_run_predates_take_what_runs_did_before_they_existed(tmp_path):
    run = fake_run(tmp_path / "run", seed=1)
    recorded = json.loads(run.config_path.read_text())
    del recorded["pooling"]
    run.config_path.write_text(json.dumps({**recorded, "an_option_of_a_later_version": 1}))
    assert run.config().pooling == "model"  # not today's default, mean
    assert run.recorded_options()["pooling"] == "model"
    assert "an_option_of_a_later_version" not in run.config().to_dict()
    assert RunDir(tmp_path / "nothing").recorded_options() is None


def test_finished_folds_are_listed_in_numeric_order(tmp_path):
    run = RunDir(tmp_path / "run")
    for number in (10, 2, 0):
        fold = run.fold(number)
        fold.model.mkdir(parents=True)
        (fold.model / "model.safetensors").write_bytes(b"weights")
        fold.save_finished({"fold": number}, np.zeros((4, len(LABELS)), dtype=np.float32))
    unfinished = run.fold(1)
    unfinished.model.mkdir(parents=True)
    (unfinished.model / "model.safetensors").write_bytes(b"weights")  # no record.json: still training
    (run.path / "folds" / "fold-notes").mkdir()
    assert [fold.number for fold in run.finished_folds()] == [0, 2, 10]
    assert run.fold(2).read_record() == {"fold": 2}


def test_a_finished_fold_is_only_taken_for_the_same_held_out_rows(tmp_path):
    fold = RunDir(tmp_path / "run").fold(0)
    fold.model.mkdir(parents=True)
    assert fold.load_finished(4) is None
    (fold.model / "model.safetensors").write_bytes(b"weights")
    probabilities = np.random.default_rng(0).random((4, len(LABELS)), dtype=np.float32)
    fold.save_finished({"fold": 0, "best_epoch": 1}, probabilities)
    record, loaded = fold.load_finished(4)
    assert record == {"fold": 0, "best_epoch": 1}
    np.testing.assert_array_equal(loaded, probabilities)
    assert fold.load_finished(5) is None  # held out other rows (another --limit): trained again
    assert not list(fold.path.glob("*.tmp"))


def test_epochs_are_kept_until_the_fold_discards_its_training_files(tmp_path):
    fold = RunDir(tmp_path / "run").fold(1)
    fold.checkpoints.mkdir(parents=True)
    assert fold.read_epochs() == []
    fold.write_epochs([{"epoch": 1, "f1_at_best_global_threshold": 0.4}])
    assert fold.read_epochs() == [{"epoch": 1, "f1_at_best_global_threshold": 0.4}]
    fold.discard_training_files()
    assert not fold.checkpoints.exists() and not fold.epochs_path.exists() and fold.path.is_dir()


def test_parity_sample_keeps_arguments_with_their_labels(tmp_path):
    arguments, targets = read_labelled_arguments(EXAMPLES / "arguments.tsv", EXAMPLES / "labels.tsv")
    best = CheckpointDir(tmp_path / "best")
    best.path.mkdir()
    assert best.parity_arguments() is None and best.parity_truth(arguments) is None
    best.write_parity_sample(arguments.iloc[5:15], targets[5:15])
    sample = best.parity_arguments()
    assert sample[ID_COLUMN].tolist() == arguments[ID_COLUMN].iloc[5:15].tolist()
    np.testing.assert_array_equal(best.parity_truth(sample.iloc[::-1]), targets[5:15][::-1])
    assert best.parity_truth(arguments) is None  # labels for only some of the arguments
    student = CheckpointDir(tmp_path / "student")
    student.path.mkdir()
    student.copy_parity_sample_from(best)
    np.testing.assert_array_equal(student.parity_truth(sample), targets[5:15])


def test_summary_round_trips(tmp_path):
    best = CheckpointDir(tmp_path)
    assert best.read_summary() is None
    best.write_summary({"best": {"fold": 1, "f1": np.float32(0.5)}})
    assert best.read_summary() == {"best": {"fold": 1, "f1": 0.5}}


def test_of_checkpoint_finds_the_finished_run_a_checkpoint_belongs_to(tmp_path):
    run = fake_run(tmp_path / "run", seed=0)
    run.best.path.mkdir()
    assert RunDir.of_checkpoint(run.best.path) is None  # no report yet: not a finished run
    (run.path / "cv-report.json").write_text("{}")
    assert RunDir.of_checkpoint(run.best.path) == run


def test_probabilities_tsv_puts_extra_columns_after_the_id(tmp_path):
    ids = pd.Series(["a", "b"])
    write_probabilities(tmp_path / "p.tsv", ids, np.full((2, len(LABELS)), 0.25, dtype=np.float32), {"fold": [0, 1]})
    frame = pd.read_csv(tmp_path / "p.tsv", sep="\t")
    assert list(frame.columns) == [ID_COLUMN, "fold", *LABELS]
    assert frame["fold"].tolist() == [0, 1] and (frame[LABELS] == 0.25).all().all()


def test_mean_out_of_fold_averages_runs_aligned_by_argument(tmp_path):
    first, second = fake_run(tmp_path / "a", seed=1), fake_run(tmp_path / "b", seed=2, folds=2)
    shuffled = second.read_out_of_fold().sample(frac=1.0, random_state=0)
    write_probabilities(second.oof_path, shuffled.index.to_series(), shuffled[LABELS].to_numpy(),
                        {"fold": shuffled["fold"].to_numpy()})
    mean = mean_out_of_fold([first.path, second.path])
    a, b = first.read_out_of_fold(), second.read_out_of_fold()
    assert mean.index.tolist() == a.index.tolist()  # the first run's order
    np.testing.assert_allclose(mean[LABELS].to_numpy(), (a[LABELS] + b.loc[a.index, LABELS]).to_numpy() / 2)
    assert mean["fold"].tolist() == a["fold"].tolist()  # the first run's folds


def test_joined_thresholds_are_chosen_on_the_mean_with_the_first_runs_labels(tmp_path):
    from argvalues.metrics import choose_thresholds

    runs = [fake_run(tmp_path / "a", seed=1).path, fake_run(tmp_path / "b", seed=2).path]
    targets, probabilities, folds = joined_out_of_fold(runs)
    arguments, labels = read_labelled_arguments(EXAMPLES / "arguments.tsv", EXAMPLES / "labels.tsv")
    np.testing.assert_array_equal(targets, labels)  # fake runs keep the arguments' order
    np.testing.assert_allclose(probabilities, mean_out_of_fold(runs)[LABELS].to_numpy())
    assert joined_thresholds(runs, "global") == choose_thresholds(targets, probabilities, folds, "global")


def test_runs_that_cannot_join_are_refused(tmp_path):
    first = fake_run(tmp_path / "a", seed=1)
    other_template = fake_run(tmp_path / "b", seed=2, template="premise")
    with pytest.raises(ModelDirError, match="template 'premise' vs 'premise-stance-conclusion'"):
        mean_out_of_fold([first.path, other_template.path])
    unfinished = fake_run(tmp_path / "c", seed=3)
    unfinished.oof_path.unlink()
    with pytest.raises(ModelDirError, match="not a finished training run"):
        mean_out_of_fold([first.path, unfinished.path])
    fewer = fake_run(tmp_path / "d", seed=4)
    oof = fewer.read_out_of_fold().iloc[:-1]
    write_probabilities(fewer.oof_path, oof.index.to_series(), oof[LABELS].to_numpy(), {"fold": oof["fold"].to_numpy()})
    with pytest.raises(ModelDirError, match="cover different arguments"):
        mean_out_of_fold([first.path, fewer.path])


def test_unreadable_training_labels_are_a_model_dir_error(tmp_path):
    first, second = fake_run(tmp_path / "a", seed=1), fake_run(tmp_path / "b", seed=2)
    recorded = json.loads(first.config_path.read_text())
    first.config_path.write_text(json.dumps({**recorded, "labels": str(tmp_path / "gone.tsv")}))
    with pytest.raises(ModelDirError, match="training labels are needed") as raised:
        joined_thresholds([first.path, second.path], "global")
    assert isinstance(raised.value, ArgvaluesError) and "gone.tsv: no such file" in str(raised.value)
