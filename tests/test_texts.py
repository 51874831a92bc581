"""Any text, any length: texts alone (--text-column), rows longer than the max length read in
windows, stances as people write them, and options that contradict each other."""

import io
import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from tiny_models import EXAMPLES, make_checkpoint

from argvalues.contract import ARGUMENT_COLUMNS, ID_COLUMN, LABELS, PREMISE, read_arguments
from argvalues.errors import ArgvaluesError
from argvalues.model_config import ARGUMENTS, TEXT, TEXT_TEMPLATE, ScoringConfig
from scorer.cli import predict, score
from scorer.model import Prepared, ScoringModel
from scorer.options import ScoreOptions
from scorer.score import score_files
from scorer.windows import Encoded

QUIET = {"log": lambda _: None}
TEXTS = [["p-1", "fast food harms the health of children"], ["p-2", "jobs in the timber towns matter more"],
         ["p-3", "everyone deserves to speak freely without fear"]]


def both_model_at(root):
    """A tiny model recorded as reading arguments and texts alone, 24 tokens long: long rows are easy to make."""
    from export.onnx import export_model

    checkpoint = make_checkpoint("bert", root / "checkpoint", threshold=0.5, max_length=24, reads_texts=True)
    export_model(checkpoint, root / "model", **QUIET)
    return root / "model"


@pytest.fixture(scope="module")
def both_model(tmp_path_factory):
    return both_model_at(tmp_path_factory.mktemp("both-model"))


def run(model, *args):
    return CliRunner().invoke(score, ["--model", str(model), "--quiet", *map(str, args)])


def table(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text), sep="\t", dtype={ID_COLUMN: str})


def write_texts(path, rows, header=("id", "text")):
    path.write_text("\n".join([",".join(header), *(",".join(row) for row in rows)]) + "\n")
    return path


def long_arguments(repeat: int = 6) -> pd.DataFrame:
    """The shipped examples, every other premise repeated (rows far beyond a tiny model's 24 tokens),
    the others cut to their first four words (rows that fit), the conclusions to three."""
    arguments = read_arguments(EXAMPLES / "arguments.tsv")
    short = arguments[PREMISE].str.split().str[:4].str.join(" ")
    premises = short.where(arguments.index % 2 == 1, (arguments[PREMISE] + " ") * repeat)
    conclusions = arguments["Conclusion"].str.split().str[:3].str.join(" ")
    return arguments.assign(**{PREMISE: premises, "Conclusion": conclusions})


def test_a_text_corpus_is_scored_text_by_text(both_model, tmp_path):
    source = write_texts(tmp_path / "posts.csv", TEXTS)
    result = run(both_model, "--text-column", "text", "--id-column", "id", "--probabilities", source)
    assert result.exit_code == 0, result.output
    out = table(result.stdout)
    assert out[ID_COLUMN].tolist() == ["p-1", "p-2", "p-3"]
    model = ScoringModel(both_model, device="cpu", reading=TEXT)
    texts = pd.DataFrame({ID_COLUMN: [t[0] for t in TEXTS], PREMISE: [t[1] for t in TEXTS]})
    np.testing.assert_allclose(out[LABELS].to_numpy(), model.probabilities(texts), atol=1e-6)
    # read as arguments (with a stance and conclusion) the same premises score otherwise: the text is read alone
    as_arguments = ScoringModel(both_model, device="cpu").probabilities(
        pd.DataFrame([[i, "We should act", "in favor of", t] for i, t in TEXTS], columns=ARGUMENT_COLUMNS))
    assert np.abs(as_arguments - model.probabilities(texts)).max() > 1e-5  # a random-init model: small, not 0
    # every format, and row numbers where there is no ID column
    jsonl = tmp_path / "posts.jsonl"
    jsonl.write_text("".join(json.dumps({"text": t}) + "\n" for _, t in TEXTS))
    numbered = run(both_model, "--text-column", "text", "--probabilities", jsonl)
    assert numbered.exit_code == 0, numbered.output
    assert table(numbered.stdout)[ID_COLUMN].tolist() == ["1", "2", "3"]
    assert table(numbered.stdout)[LABELS].equals(out[LABELS])


def test_an_empty_text_is_a_bad_row_named_as_a_text(both_model, tmp_path):
    source = write_texts(tmp_path / "posts.csv", [TEXTS[0], ["p-9", ""]])
    result = run(both_model, "--text-column", "text", "--id-column", "id", source)
    assert result.exit_code == 3 and "line 3: column 'text': empty text" in result.stderr


def test_a_model_trained_on_arguments_only_refuses_texts_in_one_line(tiny_exported, tmp_path):
    source = write_texts(tmp_path / "posts.csv", TEXTS)
    out = tmp_path / "out.tsv"
    result = run(tiny_exported, "--text-column", "text", "--id-column", "id", source, "-o", out)
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "this model was trained to read arguments" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["posts.csv"]


def test_what_a_model_reads_is_recorded_in_its_directory(both_model, tiny_exported, tmp_path):
    assert ScoringConfig.load(both_model).readings == [ARGUMENTS, TEXT]
    assert json.loads((both_model / "argvalues.json").read_text())["text_template"] == {"text": "{Premise}",
                                                                                      "text_pair": None}
    assert ScoringConfig.load(tiny_exported).readings == [ARGUMENTS]
    assert "text_template" not in json.loads((tiny_exported / "argvalues.json").read_text())
    premise_only = make_checkpoint("bert", tmp_path / "premise", template="premise")  # a premise alone is a text
    assert ScoringConfig.load(premise_only).readings == [ARGUMENTS, TEXT]
    with pytest.raises(ArgvaluesError, match="trained to read arguments"):
        ScoringConfig.load(tiny_exported).template_for(TEXT)
    assert ScoringConfig.load(both_model).template_for(TEXT) == TEXT_TEMPLATE


def test_text_column_and_column_mappings_do_not_go_together(both_model, tmp_path):
    source = write_texts(tmp_path / "posts.csv", TEXTS)
    result = run(both_model, "--text-column", "text", "--column", "Premise=text", source)
    assert result.exit_code == 1 and "give one or the other" in result.stderr


def test_predict_takes_a_text_alone(both_model, tiny_exported):
    runner = CliRunner()
    result = runner.invoke(predict, ["--model", str(both_model), "--text", "fast food harms children"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("values: ") and len(result.output.strip().splitlines()) == 2 + len(LABELS)
    refused = runner.invoke(predict, ["--model", str(tiny_exported), "--text", "fast food harms children"])
    assert refused.exit_code == 1 and "trained to read arguments" in refused.output
    both = runner.invoke(predict, ["--model", str(both_model), "--text", "t", "--premise", "p", "--conclusion", "c"])
    assert both.exit_code == 1 and "one or the other" in both.output
    neither = runner.invoke(predict, ["--model", str(both_model), "--premise", "p"])
    assert neither.exit_code == 2


def test_threshold_and_probabilities_do_not_go_together(tiny_exported):
    result = run(tiny_exported, "--threshold", "0.4", "--probabilities", EXAMPLES / "arguments.tsv")
    assert result.exit_code == 1 and "--threshold and --probabilities do not go together" in result.stderr


def test_stances_as_people_write_them_score_as_the_official_ones(tiny_exported, tmp_path):
    official = read_arguments(EXAMPLES / "arguments.tsv")
    written = official.assign(Stance=official["Stance"].map({"in favor of": " PRO", "against": "Against "}))
    sources = []
    for name, frame in (("official", official), ("written", written)):
        sources.append(tmp_path / f"{name}.tsv")
        frame.to_csv(sources[-1], sep="\t", index=False)
    outputs = [run(tiny_exported, "--probabilities", source) for source in sources]
    assert all(result.exit_code == 0 for result in outputs)
    assert outputs[0].stdout == outputs[1].stdout


def window_probabilities(model: ScoringModel, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Every window's probabilities on its own, and each row's window count."""
    prepared = model.prepare(frame)
    encoded = model.encode(frame)
    each = Prepared(prepared.batches, Encoded(encoded.encodings, np.ones(len(encoded.encodings), dtype=np.int64),
                                              np.zeros(len(encoded.encodings), bool), np.zeros(len(encoded.encodings), bool)))
    return model.infer(each), encoded.windows_per_row


@pytest.mark.parametrize("reading", [ARGUMENTS, TEXT])
def test_a_long_row_scores_the_largest_probability_over_its_windows(both_model, reading):
    arguments = long_arguments()
    model = ScoringModel(both_model, device="cpu", reading=reading)
    windows, counts = window_probabilities(model, arguments)
    assert (counts[::2] > 1).all() and (counts[1::2] == 1).all()
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    expected = np.stack([windows[start:start + count].max(axis=0) for start, count in zip(starts, counts)])
    rows = model.probabilities(arguments)
    np.testing.assert_array_equal(rows, expected)
    # truncation reads each row's first window alone
    truncated = ScoringModel(both_model, device="cpu", reading=reading, long_text="truncate").probabilities(arguments)
    np.testing.assert_array_equal(truncated, windows[starts])
    assert (rows >= truncated).all() and (rows > truncated).any()


def test_every_window_of_an_argument_keeps_its_stance_and_conclusion(both_model):
    model = ScoringModel(both_model, device="cpu")
    arguments = long_arguments()
    encoded = model.encode(arguments)
    _, pair = model.template.render(arguments)
    position = 0
    for row, count in enumerate(encoded.windows_per_row):
        tail = model.tokenizer.encode(pair[row], add_special_tokens=False).ids
        for window in encoded.encodings[position:position + count]:
            assert len(window.ids) <= 24 and window.ids[-len(tail) - 1:-1].tolist() == tail
        position += count


def test_a_second_segment_too_long_to_share_a_window_is_cut_not_a_crash(both_model):
    model = ScoringModel(both_model, device="cpu")
    row = pd.DataFrame([["A1", "a conclusion " * 30, "against", "a premise " * 30]], columns=ARGUMENT_COLUMNS)
    encoded = model.encode(row)
    assert encoded.windows_per_row[0] > 1 and all(len(e.ids) <= 24 for e in encoded.encodings)
    assert model.probabilities(row).shape == (1, len(LABELS))


def test_the_window_cap_cuts_the_rest_of_a_row_and_counts_it(both_model, tmp_path):
    arguments = long_arguments(repeat=12)
    source = tmp_path / "long.tsv"
    arguments.to_csv(source, sep="\t", index=False)
    model = ScoringModel(both_model, device="cpu")
    windows, counts = window_probabilities(model, arguments)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    capped = np.stack([windows[start:start + min(count, 2)].max(axis=0) for start, count in zip(starts, counts)])
    out = tmp_path / "out.tsv"
    result = CliRunner().invoke(score, ["--model", str(both_model), "--probabilities", "--max-windows", "2",
                                        str(source), "-o", str(out)])
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(table(out.read_text())[LABELS].to_numpy(), capped, atol=1e-6)
    long_rows, cut = int((counts > 1).sum()), int((counts > 2).sum())
    assert 0 < cut <= long_rows
    assert (f"note: {long_rows} of {len(arguments)} rows were longer than the model's 24 tokens: read in overlapping "
            f"windows of 24 tokens, {int(np.minimum(counts, 2).sum())} windows scored in all; {cut} had more than 2 "
            f"windows and were cut there (--max-windows)") in result.stderr
    sidecar = json.loads((tmp_path / "out.tsv.meta.json").read_text())
    assert sidecar["long_texts"] == {"max_length": 24, "rows_longer": long_rows, "windows": int(np.minimum(counts, 2).sum()),
                                     "rows_cut": cut}
    assert sidecar["options"]["long_text"] == "windows" and sidecar["options"]["max_windows"] == 2


def test_truncation_is_one_option_away_and_says_so(both_model, tmp_path):
    source = tmp_path / "long.tsv"
    long_arguments().to_csv(source, sep="\t", index=False)
    result = CliRunner().invoke(score, ["--model", str(both_model), "--long-text", "truncate", str(source)])
    assert result.exit_code == 0
    assert "rows were longer than the model's 24 tokens and were cut there (--long-text truncate)" in result.stderr


def test_windows_do_not_depend_on_batch_size_chunking_or_the_other_rows(both_model, tmp_path):
    arguments = long_arguments()
    model = ScoringModel(both_model, device="cpu", variant="fp32")
    alone = np.concatenate([model.probabilities(arguments.iloc[[i]], batch_size=64) for i in range(len(arguments))])
    # fp32 batches rows of several lengths, padded: equal to the last few bits, not bit for bit
    for batch_size in (1, 5, 64):
        np.testing.assert_allclose(model.probabilities(arguments, batch_size), alone, atol=1e-6)
    source = tmp_path / "long.tsv"
    arguments.to_csv(source, sep="\t", index=False)
    outputs = []
    for chunk_rows in (1, 3, 8192):
        target = tmp_path / f"{chunk_rows}.tsv"
        score_files([str(source)], str(target), ScoreOptions(model_dir=str(both_model), chunk_rows=chunk_rows,
                                                             batch_size=1))
        outputs.append(target.read_bytes())
    assert outputs[0] == outputs[1] == outputs[2]


def test_a_resumed_run_with_windows_is_byte_identical(both_model, tmp_path, monkeypatch):
    import scorer.score

    arguments = pd.concat([long_arguments()] * 4, ignore_index=True)
    arguments[ID_COLUMN] = [f"R{i:03d}" for i in range(len(arguments))]
    source = tmp_path / "long.tsv"
    arguments.to_csv(source, sep="\t", index=False)
    options = dict(model_dir=str(both_model), chunk_rows=5, probabilities=True)
    whole = tmp_path / "whole.tsv"
    score_files([str(source)], str(whole), ScoreOptions(**options))

    chunks = scorer.score.scored_chunks

    def stopped_after_two(*args, **kwargs):
        for number, chunk in enumerate(chunks(*args, **kwargs)):
            if number == 2:
                raise KeyboardInterrupt
            yield chunk

    resumed = tmp_path / "resumed.tsv"
    monkeypatch.setattr(scorer.score, "scored_chunks", stopped_after_two)
    with pytest.raises(Exception, match="interrupted after 10 rows"):
        score_files([str(source)], str(resumed), ScoreOptions(**options))
    monkeypatch.setattr(scorer.score, "scored_chunks", chunks)
    stats = score_files([str(source)], str(resumed), ScoreOptions(**options, resume=True))
    assert stats.resumed_rows == 10
    assert resumed.read_bytes() == whole.read_bytes()
    counts = [json.loads(path.with_name(path.name + ".meta.json").read_text())["long_texts"] for path in (whole, resumed)]
    assert counts[0] == counts[1] and counts[0]["rows_longer"] == len(arguments) // 2


def test_only_rows_longer_than_the_max_length_are_windowed_and_then_in_shorter_windows(tmp_path):
    """Windows of --window-tokens, shorter than the max length: a row that fits the max length is read
    whole, as with truncation; a longer one in windows of at most --window-tokens tokens."""
    from export.onnx import export_model

    checkpoint = make_checkpoint("bert", tmp_path / "checkpoint", max_length=64, reads_texts=True)
    export_model(checkpoint, tmp_path / "model", **QUIET)
    texts = pd.DataFrame({ID_COLUMN: ["fits", "long"], PREMISE: [" ".join(["word"] * 40), " ".join(["word"] * 200)]})
    windowed = ScoringModel(tmp_path / "model", device="cpu", reading=TEXT, window_tokens=20)
    whole = ScoringModel(tmp_path / "model", device="cpu", reading=TEXT, long_text="truncate")
    encoded = windowed.encode(texts)
    assert encoded.windows_per_row.tolist()[0] == 1 and encoded.windows_per_row[1] > 200 // 20
    assert len(encoded.encodings[0].ids) == 42 and all(len(w.ids) <= 20 for w in encoded.encodings[1:])
    np.testing.assert_array_equal(windowed.probabilities(texts)[0], whole.probabilities(texts)[0])
    assert ScoringModel(tmp_path / "model", device="cpu", reading=TEXT).encoder.window == 48  # the default


def test_matched_thresholds_label_as_often_as_the_reference_reading():
    from argvalues.metrics import matched_thresholds

    rng = np.random.default_rng(0)
    whole = rng.random((1000, len(LABELS)))
    alone = whole * 0.8  # less sure of every row, in the same order
    thresholds = matched_thresholds(whole, 0.5, alone)
    assert np.allclose(thresholds, 0.4, atol=0.01)
    assert np.abs((alone >= np.asarray(thresholds)).sum(0) - (whole >= 0.5).sum(0)).max() <= 1
    never = np.zeros_like(whole)  # a value the reference never gives keeps the reference's threshold
    assert matched_thresholds(never, 0.5, alone) == [0.5] * len(LABELS)


def test_a_text_is_labelled_at_the_text_readings_own_thresholds(both_model, tmp_path):
    import shutil

    model = shutil.copytree(both_model, tmp_path / "model")
    config = ScoringConfig.load(model)
    config.text_thresholds = [0.0] * len(LABELS)  # every value for every text
    config.save(model)
    texts = write_texts(tmp_path / "texts.csv", TEXTS)
    result = run(model, "--text-column", "text", "--id-column", "id", texts)
    assert result.exit_code == 0, result.output
    assert (table(result.output)[LABELS] == 1).all().all()
    arguments = table(run(model, EXAMPLES / "arguments.tsv").output)  # arguments keep theirs
    unchanged = table(run(both_model, EXAMPLES / "arguments.tsv").output)
    pd.testing.assert_frame_equal(arguments, unchanged)
    assert ScoringModel(model, device="cpu", reading=TEXT).thresholds.tolist() == [0.0] * len(LABELS)
    assert ScoringModel(model, device="cpu").thresholds.tolist() == config.thresholds
    config.text_thresholds = [0.5] * 3
    with pytest.raises(ArgvaluesError, match="text_thresholds must be 20 numbers"):
        ScoringConfig(**{**vars(config)})


def test_summarize_labels_a_text_runs_probabilities_at_the_text_readings_thresholds(both_model, tmp_path):
    import shutil

    from scorer.summarize import describe_source

    model = shutil.copytree(both_model, tmp_path / "model")
    config = ScoringConfig.load(model)
    config.text_thresholds = [0.3] * len(LABELS)
    config.save(model)
    texts = describe_source(None, {"options": {"text_column": "text"}, "model": {"directory": str(model)}}, None, None)
    assert texts.thresholds.tolist() == pytest.approx([0.3] * len(LABELS))
    arguments = describe_source(None, {"options": {}, "model": {"directory": str(model)}}, None, None)
    assert arguments.thresholds.tolist() == pytest.approx(config.thresholds)
