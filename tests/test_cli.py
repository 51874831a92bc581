import pytest
from click.testing import CliRunner
from tiny_models import EXAMPLES

from argvalues.cli import main


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("command", ["train", "distill", "export", "score", "evaluate", "predict"])
def test_every_command_explains_itself(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0 and "Usage:" in result.output and len(result.output.splitlines()) > 5


def test_train_with_a_missing_column_is_one_line(tmp_path):
    bad = tmp_path / "a.tsv"
    bad.write_text("Argument ID\tPremise\nA1\tp\n")
    result = invoke("train", "--arguments", bad, "--labels", EXAMPLES / "labels.tsv", "--output", tmp_path / "run")
    assert result.exit_code == 3
    assert result.stderr.strip() == (f"Error: {bad}: line 1: missing column(s) ['Conclusion', 'Stance']; expected the "
                                     f"columns ['Argument ID', 'Conclusion', 'Stance', 'Premise'] but found "
                                     f"['Argument ID', 'Premise']")
    assert not (tmp_path / "run").exists()


def test_train_with_an_unknown_model_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = invoke("train", "--arguments", EXAMPLES / "arguments.tsv", "--labels", EXAMPLES / "labels.tsv",
                    "--model", "no-such-org/no-such-model", "--output", tmp_path / "run")
    assert result.exit_code == 4
    assert result.stderr.startswith("Error: cannot load model 'no-such-org/no-such-model'")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_train_refuses_bad_options_before_reading(tmp_path):
    result = invoke("train", "--arguments", EXAMPLES / "arguments.tsv", "--labels", EXAMPLES / "labels.tsv",
                    "--folds", "0", "--output", tmp_path / "run")
    assert result.exit_code == 1 and result.stderr.strip() == "Error: --folds must be at least 1, got 0"


def test_export_of_a_missing_run_is_one_line(tmp_path):
    result = invoke("export", tmp_path / "missing", "--output", tmp_path / "model")
    assert result.exit_code == 4 and "no such run or checkpoint directory" in result.stderr
    assert not (tmp_path / "model").exists()


def test_evaluate_and_predict(tiny_exported, tmp_path):
    scores = tmp_path / "scores.tsv"
    assert invoke("score", "--model", tiny_exported, EXAMPLES / "arguments.tsv", "-o", scores).exit_code == 0
    result = invoke("evaluate", scores, EXAMPLES / "labels.tsv")
    assert result.exit_code == 0 and result.output.startswith("Official F1 ")
    assert "Universalism: objectivity" in result.output
    from scorer.evaluate import evaluate_files

    assert f"{evaluate_files(scores, EXAMPLES / 'labels.tsv')['f1']:.4f}" in result.output.splitlines()[0]
    probabilities = tmp_path / "p.tsv"
    invoke("score", "--model", tiny_exported, "--probabilities", EXAMPLES / "arguments.tsv", "-o", probabilities)
    refused = invoke("evaluate", probabilities, EXAMPLES / "labels.tsv")
    assert refused.exit_code == 3 and "pass --threshold" in refused.stderr
    result = invoke("predict", "--model", tiny_exported, "--premise", "Buses help families", "--conclusion",
                    "We should subsidize public transport")
    assert result.exit_code == 0 and result.output.startswith("values: ")
    assert sum(line.strip().endswith(")") for line in result.output.splitlines()) == 20
    bad = invoke("predict", "--model", tiny_exported, "--premise", "x", "--stance", "maybe", "--conclusion", "y")
    assert bad.exit_code == 3 and "--stance must be one of" in bad.stderr


def test_evaluate_against_labels_without_any_positive_is_one_line(tmp_path):
    from argvalues.contract import LABELS

    header = "\t".join(["Argument ID", *LABELS])
    labels, predictions = tmp_path / "labels.tsv", tmp_path / "predictions.tsv"
    labels.write_text(f"{header}\nA1\t{chr(9).join('0' * 20)}\nA2\t{chr(9).join('0' * 20)}\n")
    predictions.write_text(f"{header}\nA1\t{chr(9).join('1' * 20)}\nA2\t{chr(9).join('0' * 20)}\n")
    result = invoke("evaluate", predictions, labels)
    assert result.exit_code == 3
    assert result.stderr == (f"Error: {labels}: no argument has any label (every value is 0), so the official "
                             "scores are undefined; expected a labels file with at least one 1\n")
    assert result.stdout == ""


def test_score_takes_h_and_version_like_argvalues():
    from argvalues import __version__
    from scorer.cli import score

    for command, name in ((main, "argvalues"), (score, "score")):
        short, long = (CliRunner().invoke(command, [flag], prog_name=name) for flag in ("-h", "--help"))
        assert short.exit_code == 0 and short.output == long.output and f"Usage: {name} " in short.output
        version = CliRunner().invoke(command, ["--version"], prog_name=name)
        assert version.exit_code == 0 and version.output == f"{name}, version {__version__}\n"


@pytest.mark.parametrize("args", [["score", "--threshold", "1.5", "x.tsv"], ["score", "--batch-size", "0", "x.tsv"],
                                  ["score", "--device", "gpu", "x.tsv"], ["score", "--format", "xml", "x.tsv"],
                                  ["score", "--column", "Premise", "x.tsv"], ["evaluate", "--threshold", "-1", "a", "b"],
                                  ["train", "--limit", "0"]])
def test_a_bad_option_value_exits_1_as_the_readme_says(args):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines()[-1].startswith("Error:")


@pytest.mark.parametrize("args", [["score", "--no-such-option", "x.tsv"], ["evaluate", "only-one"], ["score", "--model"]])
def test_a_usage_error_exits_2(args):
    assert CliRunner().invoke(main, args).exit_code == 2
