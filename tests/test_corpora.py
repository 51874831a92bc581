"""Corpora as users have them: other column names, CSV, JSON lines, Parquet, compressed files."""

import bz2
import csv
import gzip
import io
import json
import lzma

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from argvalues.contract import ARGUMENT_COLUMNS, LABELS
from argvalues.digest import sha256_of
from scorer.cli import score

ROWS = [
    ["A1", "We should ban fast food", "in favor of", "fast food harms the health of children"],
    ["A2", "We should protect old forests", "against", "jobs in the timber towns matter more"],
    # a comma, a quote, a tab and a line break: CSV quotes them, TSV cannot hold the last two
    ["A3", "We should fund, not cut, schools", "in favor of", 'a "good" school\tlifts a whole\ntown'],
]


def zstd_compress(data: bytes) -> bytes:
    try:
        from compression import zstd  # Python 3.14
    except ImportError:
        import zstandard

        return zstandard.ZstdCompressor().compress(data)
    return zstd.compress(data)


def run(model, *args):
    return CliRunner().invoke(score, ["--model", str(model), "--quiet", *map(str, args)], catch_exceptions=False)


def write_tsv(path, rows, header=ARGUMENT_COLUMNS):
    path.write_text("\n".join("\t".join(row) for row in [header, *rows]) + "\n")
    return path


def write_csv(path, rows, header=ARGUMENT_COLUMNS):
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    return path


def write_jsonl(path, rows, header=ARGUMENT_COLUMNS):
    path.write_text("".join(json.dumps(dict(zip(header, row))) + "\n" for row in rows))
    return path


def write_parquet(path, rows, header=ARGUMENT_COLUMNS, row_group_size=None):
    table = pa.table({name: [row[i] for row in rows] for i, name in enumerate(header)})
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def scores(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text), sep="\t", dtype={"Argument ID": str})


@pytest.fixture(scope="module")
def premise_model(tmp_path_factory):
    """A tiny model trained with --template premise: it reads the Premise only."""
    from tiny_models import make_checkpoint

    from export.onnx import export_model

    root = tmp_path_factory.mktemp("premise-model")
    checkpoint = make_checkpoint("bert", root / "checkpoint", threshold=0.5, template="premise")
    export_model(checkpoint, root / "model", log=lambda _: None)
    return root / "model"


@pytest.fixture(scope="module")
def reference(tiny_exported, tmp_path_factory):
    """Probabilities of the two rows that TSV can hold."""
    source = write_tsv(tmp_path_factory.mktemp("reference") / "in.tsv", ROWS[:2])
    result = run(tiny_exported, "--probabilities", source)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_a_csv_with_a_quoted_tab_and_a_quoted_line_break(tiny_exported, reference, tmp_path):
    source = write_csv(tmp_path / "in.csv", ROWS)
    assert "\n" in ROWS[2][3] and '"a ""good"" school\tlifts a whole\ntown"' in source.read_text()
    result = run(tiny_exported, "--probabilities", source)
    assert result.exit_code == 0, result.output
    out = scores(result.stdout)
    assert out["Argument ID"].tolist() == ["A1", "A2", "A3"]
    assert result.stdout.startswith(reference)  # the first two rows score exactly as from the TSV
    # the quoted tab and line break are the premise's own: scored like the same premise from JSON lines
    from_json = run(tiny_exported, "--probabilities", write_jsonl(tmp_path / "in.jsonl", ROWS))
    assert from_json.stdout == result.stdout


def test_a_bad_csv_record_is_named_by_the_line_it_starts_on(tiny_exported, tmp_path):
    source = write_csv(tmp_path / "in.csv", [*ROWS, ["B1", "c", "sideways", "p"]])  # A3 spans lines 4-5
    result = run(tiny_exported, source)
    assert result.exit_code == 3
    assert result.stderr.strip() == (f"Error: {source}: line 6: column 'Stance': unknown value 'sideways'; "
                                      f"expected one of ['in favor of', 'against'] (or 'in favour of', 'pro', 'for', 'con'; "
                                     f"case and spaces aside)")
    source.write_bytes(source.read_bytes().replace(b"B1,c,sideways,p", b'B1,c,against,"stray" quote'))
    out = tmp_path / "out.tsv"
    result = run(tiny_exported, "--on-bad-row", "skip", source, "-o", out)
    assert result.exit_code == 0, result.output
    assert scores(out.read_text())["Argument ID"].tolist() == ["A1", "A2", "A3"]
    rejects = pd.read_csv(f"{out}.rejects.tsv", sep="\t", dtype=str, quoting=3, keep_default_na=False)
    assert rejects[["Line", "Reason", "Row"]].values.tolist() == [
        ["6", "not valid CSV (',' expected after '\"')", 'B1,c,against,"stray" quote']]


@pytest.mark.parametrize("file_format", ["tsv", "csv", "jsonl", "parquet"])
def test_every_format_scores_the_same(tiny_exported, reference, tmp_path, file_format):
    writer = {"tsv": write_tsv, "csv": write_csv, "jsonl": write_jsonl, "parquet": write_parquet}[file_format]
    source = writer(tmp_path / f"in.{file_format}", ROWS[:2])
    result = run(tiny_exported, "--probabilities", source)
    assert result.exit_code == 0, result.output
    assert result.stdout == reference
    named = tmp_path / "corpus.data"  # a name that says no format: --format says it
    named.write_bytes(source.read_bytes())
    assert run(tiny_exported, "--probabilities", "--format", file_format, named).stdout == reference


@pytest.mark.parametrize("extension, compress", [
    ("gz", gzip.compress), ("bz2", bz2.compress), ("xz", lzma.compress),
    ("zst", zstd_compress)])
@pytest.mark.parametrize("file_format", ["tsv", "csv", "jsonl"])
def test_compressed_inputs(tiny_exported, reference, tmp_path, extension, compress, file_format):
    writer = {"tsv": write_tsv, "csv": write_csv, "jsonl": write_jsonl}[file_format]
    plain = writer(tmp_path / f"in.{file_format}", ROWS[:2])
    source = tmp_path / f"in.{file_format}.{extension}"
    source.write_bytes(compress(plain.read_bytes()))
    result = run(tiny_exported, "--probabilities", source)
    assert result.exit_code == 0, result.output
    assert result.stdout == reference


@pytest.mark.parametrize("extension, compress", [
    ("bz2", bz2.compress), ("xz", lzma.compress), ("zst", zstd_compress)])
def test_a_truncated_compressed_file_fails_cleanly(tiny_exported, tmp_path, extension, compress):
    rows = [[f"T{i}", "We should X", "against", f"premise number {i} " + "word " * 30] for i in range(2000)]
    packed = compress(write_tsv(tmp_path / "in.tsv", rows).read_bytes())
    source = tmp_path / f"cut.tsv.{extension}"
    source.write_bytes(packed[: len(packed) // 2])
    result = run(tiny_exported, "--chunk-rows", "100", source, "-o", tmp_path / "out.tsv")
    assert result.exit_code == 3, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and f"{source}: after line" in result.stderr
    assert not (tmp_path / "out.tsv").exists()


def test_a_text_only_corpus_through_column(premise_model, tmp_path):
    texts = [["t-17", "fast food harms the health of children"], ["t-03", "jobs in the timber towns matter more"]]
    source = write_csv(tmp_path / "texts.csv", texts, header=["id", "text"])
    result = run(premise_model, "--column", "Premise=text", "--id-column", "id", "--probabilities", source)
    assert result.exit_code == 0, result.output
    out = scores(result.stdout)
    assert out["Argument ID"].tolist() == ["t-17", "t-03"]  # the input's IDs, in input order
    # the same premises in the full ValueEval layout score the same
    full = write_tsv(tmp_path / "full.tsv", [[i, "c", "against", t] for i, t in texts])
    assert run(premise_model, "--probabilities", full).stdout == result.stdout
    # no ID column: the row numbers are the IDs, and stderr says so
    numbered = write_jsonl(tmp_path / "texts.jsonl", [[t] for _, t in texts], header=["text"])
    result = CliRunner().invoke(score, ["--model", str(premise_model), "--column", "Premise=text", "--probabilities",
                                        str(numbered)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    numbered_scores = scores(result.stdout)
    assert numbered_scores["Argument ID"].tolist() == ["1", "2"]
    assert "has no 'Argument ID' column: the output's Argument ID is the row number" in result.stderr
    assert numbered_scores[LABELS].equals(out[LABELS])


def test_row_numbers_count_across_inputs_and_keep_a_rejected_rows_number(premise_model, tmp_path):
    first = write_csv(tmp_path / "a.csv", [["one"], [""], ["three"]], header=["text"])
    second = write_csv(tmp_path / "b.csv", [["four"]], header=["text"])
    result = run(premise_model, "--column", "Premise=text", "--on-bad-row", "skip", first, second)
    assert result.exit_code == 0, result.output
    assert scores(result.stdout)["Argument ID"].tolist() == ["1", "3", "4"]
    assert f"{first}: line 3: column 'text': empty Premise" in result.stderr


def test_column_mapping_mistakes(premise_model, tiny_exported, tmp_path):
    misnamed = write_csv(tmp_path / "misnamed.csv", [["t1", "some text"]], header=["argument_id", "Premise"])
    result = run(premise_model, misnamed)  # not numbered: a near miss of the ID column is a mistake
    assert result.exit_code == 3
    assert "missing column(s) ['Argument ID'] (is 'argument_id' meant to be 'Argument ID'?)" in result.stderr
    source = write_csv(tmp_path / "texts.csv", [["t1", "some text"]], header=["id", "text"])
    unmapped = run(premise_model, "--id-column", "id", source)
    assert unmapped.exit_code == 3
    assert "missing column(s) ['Premise']" in unmapped.stderr and "use --column FIELD=NAME" in unmapped.stderr
    wrong = run(premise_model, "--column", "Premise=body", "--id-column", "id", source)
    assert wrong.exit_code == 3 and "missing column(s) ['body']" in wrong.stderr
    for args, message in [(["--column", "Premise"], "expected FIELD=NAME"),
                          (["--column", "Title=text"], "the fields are ['Conclusion', 'Stance', 'Premise']"),
                          (["--column", "Conclusion=text"], "this model does not read Conclusion")]:
        result = run(premise_model, *args, source)
        assert result.exit_code == 1 and message in result.stderr, result.stderr
    # a model that reads all three fields wants them all
    full = run(tiny_exported, "--column", "Premise=text", "--id-column", "id", source)
    assert full.exit_code == 3 and "missing column(s) ['Stance', 'Conclusion']" in full.stderr


@pytest.mark.parametrize("text, file_format, hint", [
    ("Argument ID,Conclusion,Stance,Premise\nA1,c,against,p\n", None, "looks comma-separated: use --format csv"),
    ("Argument ID\tConclusion\tStance\tPremise\nA1\tc\tagainst\tp\n", "csv", "looks tab-separated: use --format tsv"),
    ('{"Argument ID": "A1", "Conclusion": "c", "Stance": "against", "Premise": "p"}\n', None,
     "looks like JSON lines: use --format jsonl"),
])
def test_a_header_in_another_format_gets_a_hint(tiny_exported, tmp_path, text, file_format, hint):
    source = tmp_path / "corpus.tsv"
    source.write_text(text)
    result = run(tiny_exported, *(["--format", file_format] if file_format else []), source)
    assert result.exit_code == 3 and hint in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("file_format", ["csv", "jsonl", "parquet"])
def test_the_row_checks_hold_for_every_format(tiny_exported, tmp_path, file_format):
    writer = {"csv": write_csv, "jsonl": write_jsonl, "parquet": write_parquet}[file_format]
    where = "row" if file_format == "parquet" else "line"
    first = 1 if file_format in ("jsonl", "parquet") else 2  # the line (or row) of the first record
    cases = [("", "c", "against", "p", "Argument ID", "empty Argument ID"),
             ("B1", "c", "against", " ", "Premise", "empty Premise"),
             ("B1", "", "against", "p", "Conclusion", "empty Conclusion"),
             ("B1", "c", "sideways", "p", "Stance", "unknown value 'sideways'"),
             ("A1", "c", "against", "p", "Argument ID", "duplicate Argument ID 'A1'")]
    for identifier, conclusion, stance, premise, column, reason in cases:
        source = writer(tmp_path / f"in.{file_format}", [ROWS[0], [identifier, conclusion, stance, premise], ROWS[1]])
        result = run(tiny_exported, source)
        assert result.exit_code == 3
        assert result.stderr.startswith(f"Error: {source}: {where} {first + 1}: column '{column}': {reason}"), \
            result.stderr
        out = tmp_path / "out.tsv"
        skipped = run(tiny_exported, "--on-bad-row", "skip", source, "-o", out)
        assert skipped.exit_code == 0 and scores(out.read_text())["Argument ID"].tolist() == ["A1", "A2"]


def test_bytes_that_are_not_utf8_are_named_in_csv_jsonl_and_parquet(tiny_exported, tmp_path):
    csv_source = tmp_path / "in.csv"
    csv_source.write_bytes(b"Argument ID,Conclusion,Stance,Premise\nA1,c,against,caf\xe9\nA2,c,against,p\n")
    jsonl_source = tmp_path / "in.jsonl"
    jsonl_source.write_bytes(b'{"Argument ID": "A1", "Conclusion": "c", "Stance": "against", "Premise": "caf\xe9"}\n')
    parquet_source = tmp_path / "in.parquet"
    pq.write_table(pa.table({"Argument ID": ["A1"], "Conclusion": ["c"], "Stance": ["against"],
                             "Premise": pa.array([b"caf\xe9"], type=pa.binary())}), parquet_source)
    for source, where in [(csv_source, "line 2"), (jsonl_source, "line 1"), (parquet_source, "row 1")]:
        result = run(tiny_exported, source)
        assert result.exit_code == 3, result.output
        assert f"{source}: {where}: column 'Premise': bytes that are not UTF-8 at byte 3" in result.stderr


def test_jsonl_lines_that_are_not_objects_are_bad_rows(tiny_exported, tmp_path):
    source = tmp_path / "in.jsonl"
    good = [json.dumps(dict(zip(ARGUMENT_COLUMNS, row))) for row in ROWS]
    source.write_text("\n".join([good[0], "[1, 2]", '{"Argument ID": "B1"', "", good[1],
                                 json.dumps({"Argument ID": "B2", "Conclusion": "c", "Stance": "against"}),
                                 json.dumps({"Argument ID": 7, "Conclusion": "c", "Stance": "against", "Premise": "p"})])
                      + "\n")
    out = tmp_path / "out.tsv"
    result = run(tiny_exported, "--on-bad-row", "skip", source, "-o", out)
    assert result.exit_code == 0, result.output
    assert scores(out.read_text())["Argument ID"].tolist() == ["A1", "A2", "7"]
    rejects = pd.read_csv(f"{out}.rejects.tsv", sep="\t", dtype=str, quoting=3, keep_default_na=False)
    assert rejects["Line"].tolist() == ["2", "3", "6"]
    assert "a JSON list, expected an object" in rejects["Reason"].iloc[0]
    assert "not a JSON object" in rejects["Reason"].iloc[1]
    assert rejects[["Column", "Reason"]].iloc[2].tolist() == ["Premise", "no 'Premise' key"]


def test_parquet_is_read_a_batch_at_a_time(tiny_exported, reference, tmp_path, monkeypatch):
    from argvalues.formats import ParquetReader

    batches = []
    original = ParquetReader._rows

    def counting(self, iterator, wanted):
        for batch in iterator:
            batches.append(batch.num_rows)
            yield from original(self, iter([batch]), wanted)

    monkeypatch.setattr(ParquetReader, "_rows", counting)
    monkeypatch.setattr(ParquetReader, "batch_rows", 1)
    source = write_parquet(tmp_path / "in.parquet", ROWS[:2], row_group_size=1)
    result = run(tiny_exported, "--probabilities", source)
    assert result.exit_code == 0 and result.stdout == reference
    assert batches == [1, 1]


def test_parquet_needs_a_file(tiny_exported, tmp_path):
    source = write_parquet(tmp_path / "in.parquet", ROWS[:2])
    result = CliRunner().invoke(score, ["--model", str(tiny_exported), "--format", "parquet", "-"],
                                input=source.read_bytes())
    assert result.exit_code == 3 and "Parquet is read from a file" in result.stderr
    packed = tmp_path / "in.parquet.gz"
    packed.write_bytes(gzip.compress(source.read_bytes()))
    result = run(tiny_exported, packed)
    assert result.exit_code == 3 and "Parquet compresses inside" in result.stderr
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    result = run(tiny_exported, broken)
    assert result.exit_code == 3 and "not a readable Parquet file" in result.stderr


# -- output formats ------------------------------------------------------------------------------

KEPT = [["A1", "forum", "We should ban fast food", "in favor of", "fast food harms the health of children"],
        ["A2", "letter\twith a tab", "We should protect old forests", "against", "jobs in the timber towns matter more"],
        ["A3", 'a "quoted"\nline break', "We should fund schools", "in favor of", "a good school lifts a whole town"]]
KEPT_HEADER = ["Argument ID", "source", "Conclusion", "Stance", "Premise"]


def read_output(path, file_format) -> pd.DataFrame:
    if file_format == "parquet":
        return pq.read_table(path).to_pandas()
    if file_format == "jsonl":
        return pd.read_json(path, lines=True, dtype={"Argument ID": str, "source": str})
    return pd.read_csv(path, sep="\t" if file_format == "tsv" else ",", dtype={"Argument ID": str, "source": str},
                       keep_default_na=False, quoting=csv.QUOTE_NONE if file_format == "tsv" else csv.QUOTE_MINIMAL)


@pytest.mark.parametrize("probabilities", [False, True])
def test_every_output_format_holds_the_same_scores(tiny_exported, tmp_path, probabilities):
    source = write_csv(tmp_path / "in.csv", KEPT, header=KEPT_HEADER)
    flag = ["--probabilities"] if probabilities else []
    reference = read_output(_score_to(tiny_exported, tmp_path / "ref.tsv", source, *flag), "tsv")
    for file_format in ("csv", "jsonl", "parquet"):
        out = _score_to(tiny_exported, tmp_path / f"out.{file_format}", source, "--keep-columns", "source", *flag)
        frame = read_output(out, file_format)
        assert list(frame.columns) == ["Argument ID", "source", *LABELS], file_format
        assert frame["Argument ID"].tolist() == ["A1", "A2", "A3"]
        assert frame["source"].tolist() == [row[1] for row in KEPT]  # carried through, tab and line break too
        tolerance = 1e-6 if probabilities else 0  # six decimals in text, float32 in Parquet
        assert (frame[LABELS].to_numpy(dtype=float) - reference[LABELS].to_numpy(dtype=float)).max() <= tolerance


def _score_to(model, out, *args):
    result = run(model, *map(str, args), "-o", out)
    assert result.exit_code == 0, result.output
    return out


def test_a_parquet_round_trip(tiny_exported, tmp_path):
    rows = [[f"P{i:03d}", f"source {i % 3}", "We should X", ["in favor of", "against"][i % 2], f"premise {i}"]
            for i in range(50)]
    source = write_parquet(tmp_path / "in.parquet", rows, header=KEPT_HEADER, row_group_size=16)
    out = _score_to(tiny_exported, tmp_path / "out.parquet", source, "--chunk-rows", "20", "--keep-columns", "source")
    table = pq.read_table(out)
    assert pq.ParquetFile(out).metadata.num_row_groups == 3  # one per chunk of 20
    assert table.schema.field("Argument ID").type == pa.string() and table.schema.field(LABELS[0]).type == pa.int8()
    assert table.column("Argument ID").to_pylist() == [row[0] for row in rows]
    assert table.column("source").to_pylist() == [row[1] for row in rows]
    meta = json.loads(out.with_name("out.parquet.meta.json").read_text())  # the sidecar, as for the other formats
    assert meta["rows"] == {"read": 50, "scored": 50, "rejected": 0} and meta["output"]["sha256"] == sha256_of(out)
    tsv = read_output(_score_to(tiny_exported, tmp_path / "out.tsv", source, "--chunk-rows", "20"), "tsv")
    assert (table.to_pandas()[LABELS].to_numpy() == tsv[LABELS].to_numpy()).all()
    # scored again from its own output's IDs: Parquet in, Parquet out
    probabilities = _score_to(tiny_exported, tmp_path / "p.parquet", source, "--probabilities")
    assert pq.read_table(probabilities).schema.field(LABELS[0]).type == pa.float32()
    # all or nothing: a bad row in the last chunk leaves no file (and no partial) behind
    bad = write_parquet(tmp_path / "bad.parquet", [*rows, ["P999", "s", "c", "sideways", "p"]], header=KEPT_HEADER)
    failed = run(tiny_exported, "--chunk-rows", "20", bad, "-o", tmp_path / "bad-out" / "out.parquet")
    assert failed.exit_code == 3 and f"{bad}: row 51: column 'Stance'" in failed.stderr
    assert list((tmp_path / "bad-out").iterdir()) == []
    header_only = write_parquet(tmp_path / "empty.parquet", [], header=KEPT_HEADER)
    assert pq.read_table(_score_to(tiny_exported, tmp_path / "empty-out.parquet", header_only)).num_rows == 0


def test_tsv_output_refuses_values_it_cannot_hold(tiny_exported, tmp_path):
    source = write_csv(tmp_path / "in.csv", KEPT, header=KEPT_HEADER)
    result = run(tiny_exported, "--keep-columns", "source", source, "-o", tmp_path / "out.tsv")
    assert result.exit_code == 3
    assert ("line 3: column 'source': the kept column holds a tab or a line break, which TSV output cannot hold"
            in result.stderr)
    skipped = run(tiny_exported, "--keep-columns", "source", "--on-bad-row", "skip", source, "-o", tmp_path / "out.tsv")
    assert skipped.exit_code == 0
    assert read_output(tmp_path / "out.tsv", "tsv")["Argument ID"].tolist() == ["A1"]
    quoted_id = write_csv(tmp_path / "ids.csv", [['A"1', "c", "against", "p"]])
    out = _score_to(tiny_exported, tmp_path / "ids.tsv", quoted_id)
    assert out.read_text().splitlines()[1].startswith('A"1\t')  # as in the input: TSV has no quoting


def test_output_format_options(tiny_exported, tmp_path):
    source = write_tsv(tmp_path / "in.tsv", ROWS[:2])
    piped = run(tiny_exported, "--output-format", "jsonl", source)
    assert [json.loads(line)["Argument ID"] for line in piped.stdout.splitlines()] == ["A1", "A2"]
    as_csv = run(tiny_exported, "--output-format", "csv", source)
    assert as_csv.stdout.splitlines()[0] == ",".join(["Argument ID", *LABELS])
    named = _score_to(tiny_exported, tmp_path / "scores.txt", "--output-format", "csv", source)
    assert named.read_text().startswith("Argument ID,")
    for args, message in [(["--output-format", "parquet"], "--output-format parquet needs -o"),
                          (["--resume", "-o", tmp_path / "x.parquet"], "--resume cannot continue a Parquet output"),
                          (["--keep-columns", "Stimulation", "-o", tmp_path / "x.csv"], "has a column of that name")]:
        result = run(tiny_exported, *args, source)
        assert result.exit_code == 1 and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    missing = run(tiny_exported, "--keep-columns", "nope", source, "-o", tmp_path / "y.csv")
    assert missing.exit_code == 3 and "--keep-columns names column(s) ['nope']" in missing.stderr


def test_jsonl_with_resume_after_a_kill(tiny_exported, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    rows = [[f"J{i:05d}", "We should X", ["in favor of", "against"][i % 2], f"premise number {i} " + "word " * (i % 40)]
            for i in range(4000)]
    source = write_jsonl(tmp_path / "in.jsonl.gz", [])
    source.write_bytes(gzip.compress("".join(json.dumps(dict(zip(ARGUMENT_COLUMNS, r))) + "\n" for r in rows).encode()))
    command = [sys.executable, "-c", "from scorer.cli import main; main()", "--model", str(tiny_exported),
               "--chunk-rows", "100", "--probabilities", str(source), "-o"]
    reference = tmp_path / "reference.jsonl"
    subprocess.run([*command, str(reference)], check=True, capture_output=True)
    out = tmp_path / "run" / "scores.jsonl"
    out.parent.mkdir()
    journal = out.with_name(f".{out.name}.journal")
    process = subprocess.Popen([*command, str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # kill it once some chunks are journaled, well before the end
        if journal.is_file() and 0 < json.loads(journal.read_text())["progress"]["rows"] <= 2000:
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not out.exists()
    done = json.loads(journal.read_text())["progress"]["rows"]
    assert 0 < done < len(rows)
    resumed = subprocess.run([*command, str(out), "--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {out}: {done} rows already scored" in resumed.stderr
    assert out.read_bytes() == reference.read_bytes()
    assert sorted(p.name for p in out.parent.iterdir()) == ["scores.jsonl", "scores.jsonl.meta.json"]
