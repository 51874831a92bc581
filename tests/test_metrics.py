import numpy as np
import pytest

from argvalues.metrics import (
    apply_thresholds,
    choose_thresholds,
    full_metrics,
    official_scores,
    tune_global_threshold,
    tune_label_thresholds,
)


def test_official_formula_by_hand():
    truth = np.zeros((4, 20), dtype=int)
    pred = np.zeros((4, 20), dtype=int)
    truth[:2, 0] = 1          # label 0: 2 relevant
    pred[:1, 0] = 1           #   1 predicted, correct -> P 1, R 0.5
    truth[0, 1] = 1           # label 1: 1 relevant, nothing predicted -> P 0 (official), R 0
    pred[3, 2] = 1            # label 2: no relevant -> left out of the macro averages
    scores = official_scores(truth, pred)
    assert scores.precision == pytest.approx(0.5)       # (1 + 0) / 2
    assert scores.recall == pytest.approx(0.25)         # (0.5 + 0) / 2
    assert scores.f1 == pytest.approx(2 * 0.5 * 0.25 / 0.75)


def test_perfect_and_empty_predictions():
    rng = np.random.default_rng(0)
    truth = (rng.random((50, 20)) < 0.3).astype(int)
    assert official_scores(truth, truth).f1 == pytest.approx(1.0)
    assert official_scores(truth, np.zeros_like(truth)).f1 == 0.0


def test_full_metrics_agree_with_official_and_sklearn():
    from sklearn.metrics import f1_score, roc_auc_score

    rng = np.random.default_rng(1)
    truth = (rng.random((200, 20)) < 0.25).astype(int)
    probabilities = np.clip(truth * 0.4 + rng.random((200, 20)) * 0.6, 0, 1)
    metrics = full_metrics(truth, probabilities, 0.5)
    pred = apply_thresholds(probabilities, 0.5)
    assert metrics["f1"] == pytest.approx(official_scores(truth, pred).f1)
    assert metrics["micro_f1"] == pytest.approx(f1_score(truth, pred, average="micro"))
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(truth, probabilities, average="macro"))
    assert metrics["subset_accuracy"] == pytest.approx((truth == pred).all(1).mean())
    confusion = metrics["per_label"]["Stimulation"]["confusion"]
    assert sum(confusion.values()) == 200
    assert confusion["tp"] == int(((truth[:, 2] == 1) & (pred[:, 2] == 1)).sum())


def test_global_threshold_finds_the_separating_value():
    rng = np.random.default_rng(2)
    truth = (rng.random((300, 20)) < 0.2).astype(int)
    probabilities = np.where(truth == 1, 0.35, 0.25) + rng.random((300, 20)) * 0.04
    threshold, f1 = tune_global_threshold(truth, probabilities)
    assert 0.28 < threshold <= 0.35 and f1 == pytest.approx(1.0)


def test_per_label_thresholds_fit_labels_with_different_scales():
    rng = np.random.default_rng(3)
    truth = (rng.random((400, 20)) < 0.2).astype(int)
    centres = np.linspace(0.1, 0.8, 20)
    probabilities = centres + np.where(truth == 1, 0.05, -0.05) + rng.random((400, 20)) * 0.02
    thresholds, f1 = tune_label_thresholds(truth, probabilities)
    _, global_f1 = tune_global_threshold(truth, probabilities)
    assert f1 == pytest.approx(1.0) and global_f1 < 0.9
    assert np.all(np.abs(np.asarray(thresholds) - centres) < 0.06)


def test_choose_thresholds_prefers_global_when_per_label_only_overfits():
    rng = np.random.default_rng(4)
    truth = (rng.random((240, 20)) < 0.2).astype(int)
    probabilities = np.clip(0.3 * truth + rng.normal(0.3, 0.2, (240, 20)), 0, 1)  # same scale for every label
    choice = choose_thresholds(truth, probabilities, np.arange(240) % 4)
    assert set(choice["crossfit_f1"]) == {"global", "per-label"}
    best = max(choice["crossfit_f1"], key=choice["crossfit_f1"].get)
    assert choice["strategy"] == best
    assert len(choice["thresholds"]) == 20


def test_choose_thresholds_prefers_per_label_when_scales_differ():
    rng = np.random.default_rng(5)
    truth = (rng.random((400, 20)) < 0.2).astype(int)
    centres = np.linspace(0.1, 0.8, 20)
    probabilities = centres + np.where(truth == 1, 0.05, -0.05) + rng.random((400, 20)) * 0.02
    choice = choose_thresholds(truth, probabilities, np.arange(400) % 5)
    assert choice["strategy"] == "per-label"
    assert choice["crossfit_f1"]["per-label"] > choice["crossfit_f1"]["global"]
