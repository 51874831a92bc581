"""The packaged MiniLM model on a slice of the real data: train one fold, export, score, evaluate."""

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from argvalues.cli import main
from argvalues.contract import LABELS

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pipeline(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("integration")
    validation_arguments = root / "validation-arguments.tsv"
    validation_labels = root / "validation-labels.tsv"
    pd.read_csv(data_dir / "arguments-validation.tsv", sep="\t", dtype=str, keep_default_na=False).head(300).to_csv(
        validation_arguments, sep="\t", index=False)
    pd.read_csv(data_dir / "labels-validation.tsv", sep="\t", dtype=str).head(300).to_csv(
        validation_labels, sep="\t", index=False)
    runner = CliRunner()
    train = runner.invoke(main, [
        "train", "--arguments", str(data_dir / "arguments-training.tsv"),
        "--labels", str(data_dir / "labels-training.tsv"), "--limit", "400",
        "--validation-arguments", str(validation_arguments), "--validation-labels", str(validation_labels),
        "--folds", "1", "--epochs", "1", "--batch-size", "16", "--max-length", "64", "--lr", "2e-4",
        "--output", str(root / "run"),
    ], catch_exceptions=False)
    assert train.exit_code == 0, train.output
    # export RUN exports the run's student (train makes one by default)
    export = runner.invoke(main, ["export", str(root / "run"), "--output", str(root / "model")], catch_exceptions=False)
    assert export.exit_code == 0, export.output
    return root, validation_arguments, validation_labels


def test_onnx_probabilities_match_pytorch(pipeline):
    root, validation_arguments, _ = pipeline
    # truncated as PyTorch reads them (the scorer's default reads a long row in windows)
    result = CliRunner().invoke(main, ["score", "--model", str(root / "model"), "--variant", "fp32", "--probabilities", "--quiet",
                                       "--long-text", "truncate", str(validation_arguments),
                                       "-o", str(root / "probabilities.tsv")])
    assert result.exit_code == 0, result.output
    onnx = pd.read_csv(root / "probabilities.tsv", sep="\t")
    torch = pd.read_csv(root / "run" / "student" / "validation-probabilities.tsv", sep="\t")
    assert onnx["Argument ID"].tolist() == torch["Argument ID"].tolist()
    np.testing.assert_allclose(onnx[LABELS].to_numpy(), torch[LABELS].to_numpy(), atol=1e-4)
    manifest = json.loads((root / "model" / "manifest.json").read_text())
    sample_rows = len(pd.read_csv(root / "run" / "student" / "best" / "parity-sample.tsv", sep="\t"))
    assert manifest["parity"]["rows"] == sample_rows > 50 and manifest["parity"]["max_abs_difference"] < 1e-4


def test_exported_model_scores_validation_as_the_trainer_did(pipeline):
    root, validation_arguments, validation_labels = pipeline
    runner = CliRunner()
    f1 = {}
    for variant in ("fp32", "auto"):  # auto: the default, the fastest variant whose labels held at export
        scored = runner.invoke(main, ["score", "--model", str(root / "model"), "--variant", variant, "--quiet",
                                      "--long-text", "truncate", str(validation_arguments),
                                      "-o", str(root / f"scores-{variant}.tsv")])
        assert scored.exit_code == 0, scored.output
        evaluated = runner.invoke(main, ["evaluate", "--json", str(root / f"scores-{variant}.tsv"),
                                         str(validation_labels)])
        f1[variant] = json.loads(evaluated.stdout)["f1"]
    # export RUN takes the run's student
    trainer_f1 = json.loads((root / "run" / "cv-report.json").read_text())["student"]["validation"]["f1"]
    assert round(f1["fp32"], 3) == round(trainer_f1, 3)
    assert abs(f1["auto"] - f1["fp32"]) <= 0.01  # 300 rows: the export's own check rests on more
    assert f1["fp32"] > 0.15  # one short epoch on 400 arguments: far from good, but learned something


def test_the_trained_student_reads_texts_alone_as_the_trainer_measured(pipeline):
    """train's student learns every argument whole and as its premise alone: score --text-column reads
    the premises alone, and reproduces the trainer's figure for that reading."""
    root, validation_arguments, validation_labels = pipeline
    premises = root / "premises.csv"
    frame = pd.read_csv(validation_arguments, sep="\t", dtype=str, keep_default_na=False)
    frame[["Argument ID", "Premise"]].rename(columns={"Premise": "text"}).to_csv(premises, index=False)
    runner = CliRunner()
    scored = runner.invoke(main, ["score", "--model", str(root / "model"), "--variant", "fp32", "--quiet",
                                  "--long-text", "truncate", "--text-column", "text", str(premises),
                                  "-o", str(root / "scores-text.tsv")])
    assert scored.exit_code == 0, scored.output
    evaluated = runner.invoke(main, ["evaluate", "--json", str(root / "scores-text.tsv"), str(validation_labels)])
    report = json.loads((root / "run" / "cv-report.json").read_text())["student"]
    assert round(json.loads(evaluated.stdout)["f1"], 3) == round(report["validation_text"]["f1"], 3)


def test_a_value_argued_only_at_the_end_of_a_long_text_is_found():
    """The packaged model on an argument whose environmental point comes after 180 tokens of minutes:
    cut at 128 tokens it is missed, read in windows it is found."""
    filler = ("The city council met on Tuesday to review the budget for the coming year. The meeting began at seven "
              "and the minutes of the previous session were read aloud and approved without changes. The treasurer "
              "presented a table of revenues and expenses, line by line, and answered questions about the schedule "
              "of payments. Several members asked how the figures compared with those of last year, and the clerk "
              "read out the numbers for each department. ") * 2
    nature = ("But the plan to pave the wetland would destroy the last habitat of rare birds and frogs, poison the "
              "river, and wipe out an ecosystem that took thousands of years to grow. Nature must be protected for "
              "its own sake.")
    from scorer.model import ScoringModel
    from scorer.options import PACKAGED_MODEL_DIR

    row = pd.DataFrame([["A1", "We should approve the new road plan", "against", filler + nature]],
                       columns=["Argument ID", "Conclusion", "Stance", "Premise"])
    nature_at = LABELS.index("Universalism: nature")
    windows = ScoringModel(PACKAGED_MODEL_DIR, device="cpu")
    truncated = ScoringModel(PACKAGED_MODEL_DIR, device="cpu", long_text="truncate")
    assert windows.encode(row).windows_per_row[0] >= 2
    assert truncated.probabilities(row)[0, nature_at] < windows.thresholds[nature_at]
    assert windows.probabilities(row)[0, nature_at] >= windows.thresholds[nature_at]
