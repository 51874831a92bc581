"""Every kind of bad input a nightly job meets, and the documented behaviour for each."""

import gzip

import pandas as pd
import pytest
from click.testing import CliRunner

from argvalues.contract import ARGUMENT_COLUMNS, LABELS
from scorer.cli import score

HEADER = "\t".join(ARGUMENT_COLUMNS)
GOOD = ["G1\tWe should ban fast food\tin favor of\tfast food harms the health of children",
        "G2\tWe should protect old forests\tagainst\tjobs in the timber towns matter more"]


def write(path, text: str | bytes):
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def tsv(*rows, header=HEADER, end="\n"):
    return end.join([header, *rows]) + end


def run(model, *args):
    return CliRunner().invoke(score, ["--model", str(model), "--quiet", *map(str, args)], catch_exceptions=False)


def ids(path):
    return pd.read_csv(path, sep="\t", dtype=str)["Argument ID"].tolist()


def rejects_of(path):
    return pd.read_csv(path, sep="\t", dtype=str, quoting=3, keep_default_na=False)


# (name, file text, the bad row's line, column in the message, reason fragment, IDs kept under skip)
BAD_ROWS = [
    ("too-few-fields", tsv(GOOD[0], "B1\tWe should X\tagainst", GOOD[1]), 3, None, "3 fields, expected 4", ["G1", "G2"]),
    ("too-many-fields", tsv(GOOD[0], "B1\tc\tagainst\tp\tq", GOOD[1]), 3, None, "5 fields, expected 4", ["G1", "G2"]),
    ("tab-inside-a-field", tsv(GOOD[0], "B1\tc\tagainst\tone\ttwo", GOOD[1]), 3, None, "a tab inside a field?",
     ["G1", "G2"]),
    # Unquoted TSV cannot hold a line break: the row is cut in two. Its first part still has four
    # fields and is a row; the fragment is the bad row, and its message says the row above is cut.
    ("line-break-inside-a-field", tsv(GOOD[0], "B1\tc\tagainst\tfirst half\nsecond half", GOOD[1]), 4, None,
     "1 fields, expected 4 (a line break inside a field? if so, the line before", ["G1", "B1", "G2"]),
    ("not-utf8", tsv(GOOD[0]).encode() + b"B1\tc\tagainst\tcaf\xe9 au lait\n" + (GOOD[1] + "\n").encode(), 3, "Premise",
     "bytes that are not UTF-8", ["G1", "G2"]),
    ("empty-premise", tsv(GOOD[0], "B1\tWe should X\tagainst\t  ", GOOD[1]), 3, "Premise", "empty Premise", ["G1", "G2"]),
    ("empty-conclusion", tsv(GOOD[0], "B1\t\tagainst\tp", GOOD[1]), 3, "Conclusion", "empty Conclusion", ["G1", "G2"]),
    ("empty-id", tsv(GOOD[0], "\tc\tagainst\tp", GOOD[1]), 3, "Argument ID", "empty Argument ID", ["G1", "G2"]),
    ("unknown-stance", tsv(GOOD[0], "B1\tc\tsideways\tp", GOOD[1]), 3, "Stance", "unknown value 'sideways'", ["G1", "G2"]),
    ("duplicate-id", tsv(GOOD[0], GOOD[1], "G1\tc\tagainst\tanother premise"), 4, "Argument ID",
     "duplicate Argument ID 'G1'", ["G1", "G2"]),
]


@pytest.mark.parametrize("name, text, line, column, reason, kept", BAD_ROWS, ids=[c[0] for c in BAD_ROWS])
def test_bad_row_fails_by_default_naming_file_line_and_column(tiny_exported, tmp_path, name, text, line, column,
                                                              reason, kept):
    source = write(tmp_path / f"{name}.tsv", text)
    result = run(tiny_exported, source, "-o", tmp_path / "out.tsv")
    assert result.exit_code == 3, result.output
    where = f"{source}: line {line}" + (f": column '{column}'" if column else "")
    message = result.stderr.strip()
    assert message.startswith(f"Error: {where}: ") and reason in message, message
    assert len(message.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [source.name]  # nothing half-written
    piped = run(tiny_exported, source)
    assert piped.exit_code == 3 and piped.stdout == ""  # the bad row is in the first chunk: not even a header


@pytest.mark.parametrize("name, text, line, column, reason, kept", BAD_ROWS, ids=[c[0] for c in BAD_ROWS])
def test_bad_row_is_skipped_counted_and_written_to_rejects(tiny_exported, tmp_path, name, text, line, column,
                                                           reason, kept):
    source = write(tmp_path / f"{name}.tsv", text)
    out = tmp_path / "out.tsv"
    result = run(tiny_exported, "--on-bad-row", "skip", source, "-o", out)
    assert result.exit_code == 0, result.output
    assert ids(out) == kept
    rejects = rejects_of(tmp_path / "out.tsv.rejects.tsv")
    assert list(rejects.columns) == ["File", "Line", "Column", "Reason", "Row"]
    assert rejects["Line"].astype(int).tolist()[0] == line and reason in rejects["Reason"].iloc[0]
    assert rejects["Column"].iloc[0] == (column or "")
    assert f"warning: skipped {len(rejects)} bad row(s); written to {out}.rejects.tsv" in result.stderr


def test_skip_to_standard_output_reports_rejects_on_stderr(tiny_exported, tmp_path):
    source = write(tmp_path / "a.tsv", tsv(GOOD[0], "B1\tc\tsideways\tp", GOOD[1]))
    result = run(tiny_exported, "--on-bad-row", "skip", source)
    assert result.exit_code == 0
    assert [line.split("\t")[0] for line in result.stdout.splitlines()[1:]] == ["G1", "G2"]
    assert "warning: skipped 1 bad row(s)" in result.stderr and "line 3: column 'Stance'" in result.stderr


@pytest.mark.parametrize("variant", ["crlf", "bom", "extra-columns", "reordered-columns", "quotes", "blank-lines"])
def test_harmless_variations_score_like_the_plain_file(tiny_exported, tmp_path, variant):
    reference = run(tiny_exported, write(tmp_path / "plain.tsv", tsv(*GOOD))).stdout
    if variant == "crlf":
        text = tsv(*GOOD, end="\r\n")
    elif variant == "bom":
        text = "\ufeff" + tsv(*GOOD)
    elif variant == "extra-columns":
        text = tsv(*(row + "\tsource-x\t17" for row in GOOD), header=HEADER + "\tSource\tScore")
    elif variant == "reordered-columns":
        text = tsv(*("\t".join(reversed(row.split("\t"))) for row in GOOD), header="\t".join(reversed(ARGUMENT_COLUMNS)))
    elif variant == "quotes":
        quoted = [GOOD[0], 'G2\t"We should protect old forests\tagainst\tjobs in the timber towns matter more']
        reference = run(tiny_exported, write(tmp_path / "plain.tsv", tsv(*quoted))).stdout
        assert reference.splitlines()[2].startswith("G2\t")  # a lone quote is text, not the start of a field
        text = tsv(*quoted)
    else:
        text = tsv(GOOD[0], "", GOOD[1], "")
    result = run(tiny_exported, write(tmp_path / f"{variant}.tsv", text))
    assert result.exit_code == 0, result.output
    assert result.stdout == reference


def test_misnamed_column_suggests_the_right_name(tiny_exported, tmp_path):
    source = write(tmp_path / "a.tsv", tsv(*GOOD, header="Argument ID\tConclusion\tStance\tpremise"))
    result = run(tiny_exported, source)
    assert result.exit_code == 3
    assert result.stderr.strip().startswith(
        f"Error: {source}: line 1: missing column(s) ['Premise'] (is 'premise' meant to be 'Premise'?)")


def test_missing_column_is_an_error_even_when_skipping(tiny_exported, tmp_path):
    source = write(tmp_path / "a.tsv", tsv("G1\tc\tp", header="Argument ID\tConclusion\tPremise"))
    result = run(tiny_exported, "--on-bad-row", "skip", source, "-o", tmp_path / "out.tsv")
    assert result.exit_code == 3 and "missing column(s) ['Stance']" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tsv"]


def test_empty_file_and_header_only(tiny_exported, tmp_path):
    empty = run(tiny_exported, write(tmp_path / "empty.tsv", ""))
    assert empty.exit_code == 3 and "the file is empty" in empty.stderr
    header_only = run(tiny_exported, write(tmp_path / "header.tsv", HEADER + "\n"), "-o", tmp_path / "out.tsv")
    assert header_only.exit_code == 0
    assert (tmp_path / "out.tsv").read_text().splitlines() == ["\t".join(["Argument ID"] + LABELS)]


def test_a_one_megabyte_premise_is_scored_truncated(tiny_exported, tmp_path):
    huge = "because " + "the common good matters " * 44_000
    assert len(huge) > 1_000_000
    source = write(tmp_path / "a.tsv", tsv(GOOD[0], f"H1\tWe should X\tagainst\t{huge}", GOOD[1]))
    result = run(tiny_exported, source, "--probabilities", "-o", tmp_path / "out.tsv")
    assert result.exit_code == 0, result.output
    assert ids(tmp_path / "out.tsv") == ["G1", "H1", "G2"]


def test_a_truncated_gzip_fails_cleanly_whatever_the_policy(tiny_exported, tmp_path):
    rows = [f"T{i}\tWe should X\tagainst\tpremise number {i} " + "word " * 30 for i in range(2000)]
    packed = gzip.compress(tsv(*rows).encode())
    source = write(tmp_path / "cut.tsv.gz", packed[: len(packed) // 2])
    for policy in ("fail", "skip"):
        result = run(tiny_exported, "--on-bad-row", policy, "--chunk-rows", "100", source, "-o", tmp_path / "out.tsv")
        assert result.exit_code == 3, result.output
        assert "the compressed file is truncated or corrupt" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.tsv.gz"]
