"""From labels to findings: the recorded error rates, the corrected prevalence and its interval,
argvalues summarize, the Python API and argvalues values."""

import io
import json
import sys

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from tiny_models import EXAMPLES, fake_run, make_checkpoint

from argvalues.cli import main
from argvalues.contract import LABELS
from argvalues.error_rates import ERROR_RATES_NAME, read_error_rates, reading_rates, rolled_up, write_error_rates
from argvalues.prevalence import ADJUSTED, CORRECTED, METHODS, SCALED, SHARE, adjusted, correction_draws, estimate, scaled
from argvalues.values import BOUNDARY, HIGHER_ORDER, VALUE_CATEGORIES
from export.error_rates import choose_method, fold_corrections

QUIET = {"log": lambda _: None}


def test_the_higher_order_values_roll_up_their_categories_and_leave_the_boundary_values_alone():
    labels = np.zeros((3, len(LABELS)), dtype=bool)
    labels[0, LABELS.index("Stimulation")] = True
    labels[1, LABELS.index("Hedonism")] = True  # on the boundary: no higher-order value
    labels[2, LABELS.index("Universalism: nature")] = labels[2, LABELS.index("Tradition")] = True
    assert rolled_up(labels).tolist() == [[True, False, False, False], [False] * 4, [False, False, True, True]]
    assert set(BOUNDARY) == {"Hedonism", "Face", "Humility"}
    assert not set(BOUNDARY) & {c for members in HIGHER_ORDER.values() for c in members}
    assert [c.name for c in VALUE_CATEGORIES] == LABELS


def test_argvalues_values_lists_every_category_with_its_higher_order_value():
    result = CliRunner().invoke(main, ["values"])
    assert result.exit_code == 0
    for category in VALUE_CATEGORIES:
        assert f"{category.name}  ({category.higher_order})" in result.output
    assert "Humility  (between Conservation and Self-transcendence)" in result.output


def test_rates_count_what_they_say():
    truth = np.array([[1], [1], [0], [0], [0]], dtype=bool).repeat(len(LABELS), axis=1)
    predicted = np.array([[1], [0], [1], [0], [0]], dtype=bool).repeat(len(LABELS), axis=1)
    entry = reading_rates(truth, predicted)["categories"][LABELS[0]]
    assert (entry["tp"], entry["fp"], entry["fn"], entry["tn"]) == (1, 1, 1, 2)
    assert entry["tpr"] == 0.5 and entry["fpr"] == pytest.approx(1 / 3) and entry["precision"] == 0.5


def test_the_correction_undoes_a_known_bias_and_its_interval_covers_the_truth():
    rng = np.random.default_rng(1)
    tpr, fpr, prevalence, rows = 0.7, 0.1, 0.3, 4000
    entry = {"tp": 700, "fn": 300, "fp": 300, "tn": 2700, "tpr": tpr, "fpr": fpr, "method": ADJUSTED}
    covered = []
    for _ in range(200):
        carries = rng.random(rows) < prevalence
        labelled = np.where(carries, rng.random(rows) < tpr, rng.random(rows) < fpr)
        found = estimate(int(labelled.sum()), rows, entry, correction_draws(entry, rng, 1000), rng, 1000)
        assert abs(found.share - (prevalence * tpr + (1 - prevalence) * fpr)) < 0.03  # the share is biased
        covered.append(found.low <= carries.mean() <= found.high)
    assert abs(found.prevalence - prevalence) < 0.03
    assert np.mean(covered) >= 0.9
    assert np.isnan(adjusted(0.3, 0.52, 0.5))  # rates too close to divide by


def test_scaling_undoes_a_models_ratio_and_its_interval_carries_the_ratios_spread_between_folds():
    rng = np.random.default_rng(2)
    rows, folds = 5000, 5
    # a model that labels half again as many rows as carry the value, in every fold
    truth = rng.random((rows, len(LABELS))) < 0.2
    predicted = np.where(truth, rng.random(truth.shape) < 0.8, rng.random(truth.shape) < 0.175)
    corrections = fold_corrections(truth, predicted, np.arange(rows) % folds)
    assert corrections["ratio"][:len(LABELS)] == pytest.approx(truth.mean(0) / predicted.mean(0))
    assert (corrections["ratio_log_spread"] > 0).all() and (corrections["bias"][:len(LABELS)] > 0.05).all()
    entry = {"ratio": float(corrections["ratio"][0]), "ratio_log_spread": 0.1, "folds": folds, "method": SCALED}
    corpus = 0.1  # a corpus where the value is rarer: the same ratio holds
    found = estimate(int(1.5 * corpus * 20000), 20000, entry, correction_draws(entry, rng), rng)
    assert found.share == pytest.approx(0.15) and found.prevalence == pytest.approx(corpus, abs=0.01)
    assert found.low < corpus < found.high and found.high - found.low > 0.03  # the spread widens the interval
    assert scaled(0.9, 1.5) == 1.0  # clipped
    # a value never labelled out of fold cannot be scaled: its bias corrects it
    assert estimate(10, 100, {**entry, "ratio": 0.0, "bias": 0.05}, correction_draws({**entry, "ratio": 0.0, "bias": 0.05},
                                                                                       rng), rng).method == CORRECTED


def test_the_estimator_is_the_one_nearest_the_truth_on_held_out_folds():
    rng = np.random.default_rng(0)
    rows = 3000
    folds, cells = np.arange(rows) % 5, np.arange(rows) % 2
    prevalence = np.where(folds[:, None] % 2 == 0, 0.1, 0.4)  # sets that differ in prevalence
    truth = rng.random((rows, len(LABELS))) < prevalence
    ratio_model = np.where(truth, rng.random(truth.shape) < 0.9, rng.random(truth.shape) < 0.05)
    choice = choose_method(truth, ratio_model, cells, folds)
    assert set(choice["mean_absolute_error"]) == set(METHODS)
    assert choice["method"] != SHARE and choice["mean_absolute_error"][choice["method"]] < choice["mean_absolute_error"][SHARE]
    unbiased = truth.copy()  # a perfect model: nothing to correct
    assert choose_method(truth, unbiased, cells, folds)["mean_absolute_error"][SHARE] == 0.0


@pytest.fixture(scope="module")
def rated_model(tmp_path_factory):
    """A tiny model exported from a (fake) run: its error rates are measured on the run's out-of-fold predictions."""
    from export.onnx import ExportOptions, export_model

    root = tmp_path_factory.mktemp("rated")
    run = fake_run(root / "run", seed=0, folds=3)
    make_checkpoint("bert", run.best.path, threshold=0.5, reads_texts=True)
    export_model(run.path, root / "model", ExportOptions(variants=()), **QUIET)
    return root / "model"


def test_export_records_out_of_fold_error_rates_and_the_card_shows_them(rated_model):
    rates = read_error_rates(rated_model)
    assert set(rates["readings"]) == {"arguments", "text"}
    arguments = rates["readings"]["arguments"]
    entry = arguments["categories"][LABELS[0]]
    assert entry["tp"] + entry["fn"] + entry["fp"] + entry["tn"] == arguments["rows"] == 60
    assert entry["method"] in METHODS and set(arguments["higher_order"]) == set(HIGHER_ORDER)
    assert {"ratio", "ratio_log_spread", "bias", "bias_spread"} <= set(entry) and entry["folds"] == 3
    assert arguments["method_choice"]["method"] == entry["method"]
    assert "out-of-fold predictions" in rates["source"]
    manifest = json.loads((rated_model / "manifest.json").read_text())
    assert manifest["error_rates"] == {"file": ERROR_RATES_NAME, "rows": 60, "readings": ["arguments", "text"]}
    card = (rated_model / "README.md").read_text()
    assert "## How well each value is found" in card and f"| {LABELS[0]} | " in card


def scored(model, tmp_path, *extra):
    out = tmp_path / "scores.tsv"
    result = CliRunner().invoke(main, ["score", "--model", str(model), "--quiet", "--keep-columns", "Stance", *extra,
                                       str(EXAMPLES / "arguments.tsv"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_summarize_corrects_with_the_models_rates_overall_and_per_group(rated_model, tmp_path):
    out = scored(rated_model, tmp_path)
    result = CliRunner().invoke(main, ["summarize", str(out), "--by", "Stance", "-o", str(tmp_path / "summary")])
    assert result.exit_code == 0, result.output
    summary = pd.read_csv(tmp_path / "summary" / "summary.csv", keep_default_na=False)
    assert list(summary.columns[:10]) == ["by", "group", "value", "kind", "n", "share", "prevalence", "ci_low",
                                          "ci_high", "method"]
    overall = summary[summary["group"] == "all"]
    assert len(overall) == len(LABELS) + len(HIGHER_ORDER) and set(overall["n"]) == {60}
    stances = summary[summary["by"] == "Stance"]
    assert set(stances["group"]) == {"in favor of", "against"} and stances.groupby("value")["n"].sum().eq(60).all()
    labels = pd.read_csv(out, sep="\t")[LABELS]
    first = overall.set_index("value").loc[LABELS[0]]
    assert first["share"] == pytest.approx(labels[LABELS[0]].mean(), abs=1e-4)
    rates = read_error_rates(rated_model)["readings"]["arguments"]["categories"][LABELS[0]]
    expected = {SHARE: first["share"], SCALED: float(scaled(first["share"], rates.get("ratio", 0))),
                CORRECTED: first["share"] - rates["bias"],
                ADJUSTED: float(adjusted(first["share"], rates["tpr"], rates["fpr"]))}[first["method"]]
    assert first["prevalence"] == pytest.approx(min(max(expected, 0.0), 1.0), abs=1e-4)
    assert (summary["ci_low"] <= summary["prevalence"] + 1e-9).all() and (summary["prevalence"] <= summary["ci_high"] + 1e-9).all()
    differences = pd.read_csv(tmp_path / "summary" / "differences.csv")
    assert len(differences) == len(LABELS) + len(HIGHER_ORDER)
    assert "Stance=in favor of" in result.output and "Prevalence in % with its 95% interval" in result.output


def test_summarize_says_plainly_when_the_correction_does_not_apply(rated_model, tiny_exported, tmp_path):
    thresholded = scored(rated_model, tmp_path, "--threshold", "0.4")
    result = CliRunner().invoke(main, ["summarize", str(thresholded)])
    assert result.exit_code == 0 and "made with --threshold 0.4" in result.output
    summary = CliRunner().invoke(main, ["summarize", str(scored(tiny_exported, tmp_path))])
    assert summary.exit_code == 0 and "records no error rates" in summary.output
    missing = CliRunner().invoke(main, ["summarize", str(thresholded), "--by", "source"])
    assert missing.exit_code == 3 and "score --keep-columns" in missing.output


def test_summarize_reads_every_output_format_and_probabilities(rated_model, tmp_path):
    base = tmp_path / "tsv"
    base.mkdir()
    assert CliRunner().invoke(main, ["summarize", str(scored(rated_model, base)), "-o", str(base / "s")]).exit_code == 0
    reference = pd.read_csv(base / "s" / "summary.csv")
    for extra, name in ((["--output-format", "csv"], "scores.csv"), (["--output-format", "jsonl"], "scores.jsonl"),
                        (["--output-format", "parquet"], "scores.parquet"), (["--probabilities"], "p.tsv")):
        folder = tmp_path / name.replace(".", "-")
        folder.mkdir()
        out = folder / name
        result = CliRunner().invoke(main, ["score", "--model", str(rated_model), "--quiet", "--keep-columns", "Stance",
                                           *extra, str(EXAMPLES / "arguments.tsv"), "-o", str(out)])
        assert result.exit_code == 0, result.output
        done = CliRunner().invoke(main, ["summarize", str(out), "-o", str(folder / "s")])
        assert done.exit_code == 0, done.output
        found = pd.read_csv(folder / "s" / "summary.csv")
        pd.testing.assert_series_equal(found["share"], reference["share"])


def test_the_python_api_scores_frames_and_texts_and_summarizes(rated_model):
    import argvalues

    arguments = pd.read_csv(EXAMPLES / "arguments.tsv", sep="\t", dtype=str)
    scorer = argvalues.Scorer(rated_model)
    scores = scorer.score(arguments, keep_columns=["Stance"])
    assert list(scores.columns) == ["Argument ID", "Stance", *LABELS]
    assert scores["Argument ID"].tolist() == arguments["Argument ID"].tolist()
    cli = CliRunner().invoke(main, ["score", "--model", str(rated_model), "--quiet", str(EXAMPLES / "arguments.tsv")])
    reference = pd.read_csv(io.StringIO(cli.stdout), sep="\t")
    assert scores[LABELS].to_numpy().tolist() == reference[LABELS].to_numpy().tolist()
    texts = scorer.score(["fast food harms children", "forests must be protected"], probabilities=True)
    assert texts["Argument ID"].tolist() == ["1", "2"] and texts[LABELS].dtypes.iloc[0] == np.float32
    summary = argvalues.summarize(scores, by="Stance")
    assert set(summary["group"]) == {"all", "in favor of", "against"}
    assert summary.attrs["argvalues"]["not_adjusted"] is None


def test_import_argvalues_stays_light():
    import subprocess

    code = ("import sys, argvalues; argvalues.__version__; "
            "print(sorted(m for m in ('torch', 'onnxruntime', 'transformers', 'matplotlib') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_rates_files_round_trip_and_a_bad_one_is_a_model_directory_error(tmp_path):
    from argvalues.errors import ModelDirError

    truth = np.eye(len(LABELS), dtype=bool)
    path = write_error_rates(tmp_path, {"arguments": reading_rates(truth, truth)}, "a test")
    assert read_error_rates(tmp_path)["readings"]["arguments"]["rows"] == len(LABELS)
    path.write_text("{}")
    with pytest.raises(ModelDirError):
        read_error_rates(tmp_path)


def test_the_readme_python_example_runs_as_written(monkeypatch, capsys):
    """The README's Python example, run from the checkout as a user would run it."""
    root = EXAMPLES.parent
    readme = (root / "README.md").read_text()
    example = readme.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(root)
    monkeypatch.delenv("ARGVALUES_MODEL", raising=False)
    exec(compile(example, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "Universalism: objectivity" in printed and "prevalence" in printed


def test_summarize_corrects_the_packaged_models_shares(tmp_path, monkeypatch):
    from scorer.cli import score
    from scorer.options import MODEL_ENV

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(MODEL_ENV, raising=False)
    scored = CliRunner().invoke(score, ["--keep-columns", "Stance", str(EXAMPLES / "to-score.tsv"), "-o", "scores.tsv"])
    assert scored.exit_code == 0, scored.output
    result = CliRunner().invoke(main, ["summarize", "scores.tsv", "--by", "Stance", "-o", "summary"])
    assert result.exit_code == 0, result.output
    summary = pd.read_csv(tmp_path / "summary" / "summary.csv", keep_default_na=False)
    methods = set(summary["method"])
    assert len(methods) == 1 and SHARE not in methods, f"the packaged model's rates correct every share: {methods}"
    assert ((summary["ci_low"] <= summary["prevalence"] + 1e-9) & (summary["prevalence"] <= summary["ci_high"] + 1e-9)).all()
    labelled = summary[summary["share"] > 0]
    assert len(labelled) and (labelled["ci_low"] < labelled["ci_high"]).all()  # a scaled share carries the ratio's spread
