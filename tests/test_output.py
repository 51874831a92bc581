"""The output library both engines write through: the rejects-file rule, what a failure leaves, the format."""

import gzip
import io

import numpy as np
import pytest
from click.testing import CliRunner

from argvalues.contract import ARGUMENT_COLUMNS, LABELS
from argvalues.errors import DataError, Interrupted, RunFailed, Terminated, TerminateSignal
from argvalues.rows import REJECTS_HEADER, Reject
from scorer.cli import score
from scorer.options import ScoreOptions, ScoreStats
from scorer.output import FileOutput, ScoredChunk, StreamOutput, TsvScores, write_scores
from scorer.target import output_target

HEADER = "\t".join(ARGUMENT_COLUMNS)
GOOD = ["G1\tWe should ban fast food\tin favor of\tfast food harms the health of children",
        "G2\tWe should protect old forests\tagainst\tjobs in the timber towns matter more"]
BAD = "B1\tc\tsideways\tp"


def run(model, *args):
    return CliRunner().invoke(score, ["--model", str(model), "--quiet", *map(str, args)], catch_exceptions=False)


@pytest.mark.parametrize("on_bad_row, rejects, output, expected", [
    ("fail", None, None, None),
    ("fail", "r.tsv", None, None),  # the drift fixed: standard output no longer creates --rejects under fail
    ("fail", "r.tsv", "out.tsv", None),
    ("skip", None, None, None),
    ("skip", None, "out.tsv", "out.tsv.rejects.tsv"),
    ("skip", "r.tsv", None, "r.tsv"),
    ("skip", "r.tsv", "out.tsv", "r.tsv"),
])
def test_the_rejects_file_rule(tmp_path, monkeypatch, on_bad_row, rejects, output, expected):
    monkeypatch.chdir(tmp_path)
    options = ScoreOptions(on_bad_row=on_bad_row, rejects=rejects)
    found = output_target(output, [], options).rejects_file
    assert found == (tmp_path / expected if expected else None)


@pytest.mark.parametrize("to_file", [False, True])
def test_under_fail_no_rejects_file_is_created_whatever_the_target(tiny_exported, tmp_path, to_file):
    source = tmp_path / "good.tsv"
    source.write_text("\n".join([HEADER, *GOOD]) + "\n")
    output = ["-o", tmp_path / "out.tsv"] if to_file else []
    result = run(tiny_exported, "--rejects", tmp_path / "rejects.tsv", source, *output)
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "rejects.tsv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.tsv", "out.tsv", "out.tsv.meta.json"][: 1 + 2 * to_file]


def test_skip_to_standard_output_writes_the_named_rejects_file(tiny_exported, tmp_path):
    source = tmp_path / "a.tsv"
    source.write_text("\n".join([HEADER, GOOD[0], BAD, GOOD[1]]) + "\n")
    result = run(tiny_exported, "--on-bad-row", "skip", "--rejects", tmp_path / "rejects.tsv", source)
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "rejects.tsv").read_text().splitlines()
    assert lines[0] + "\n" == REJECTS_HEADER and lines[1].startswith(f"{source}\t3\tStance\t")
    assert len(lines) == 2
    assert "written to " + str(tmp_path / "rejects.tsv") in result.stderr


def test_a_failure_on_standard_output_leaves_no_rejects_file(tiny_exported, tmp_path):
    rows = (f"{BAD}\nG{i}\tWe should X\tagainst\tpremise {i}" for i in range(3000))
    packed = gzip.compress(("\n".join([HEADER, *rows]) + "\n").encode())
    source = tmp_path / "cut.tsv.gz"
    source.write_bytes(packed[: len(packed) // 2])
    result = run(tiny_exported, "--on-bad-row", "skip", "--chunk-rows", "100", "--rejects", tmp_path / "rejects.tsv",
                 source)
    assert result.exit_code == 3 and "truncated or corrupt" in result.stderr
    assert len(result.stdout.splitlines()) > 100  # chunks went out before the failure: a stream cannot be taken back
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.tsv.gz"]


def chunks(*ids_per_chunk, fail_with=None):
    for number, ids in enumerate(ids_per_chunk):
        rejects = [Reject("in.tsv", 10 * number + 2, "Stance", "unknown value 'sideways'", "x\tc\tsideways\tp")]
        yield ScoredChunk(np.array(ids), np.zeros((len(ids), len(LABELS)), dtype=np.int8), rejects,
                          position=[0, number + 1])
    if fail_with is not None:
        raise fail_with


def file_output(tmp_path):
    target = tmp_path / "out.tsv"
    options = ScoreOptions(on_bad_row="skip")
    fingerprint = {"inputs": [], "model": {}, "options": {}}
    return FileOutput(target, output_target(str(target), [], options).rejects, fingerprint, TsvScores(LABELS))


def test_a_file_output_appears_complete_or_not_at_all(tmp_path):
    output, stats = file_output(tmp_path), ScoreStats(0, 0.0, "cpu")
    output.begin(resume=False, stats=stats)
    write_scores(output, chunks(["A1", "A2"], [], ["A3"]), stats)
    assert stats.rows == 3 and stats.rejected == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tsv", "out.tsv.rejects.tsv"]
    assert TsvScores.ids((tmp_path / "out.tsv").read_bytes()) == ["A1", "A2", "A3"]
    assert len((tmp_path / "out.tsv.rejects.tsv").read_text().splitlines()) == 4


@pytest.mark.parametrize("error, raised, kept", [
    (DataError("in.tsv: line 9: bad"), DataError, False),  # the same input fails the same way again
    (KeyboardInterrupt(), Interrupted, True),
    (TerminateSignal(), Terminated, True),
    (RunFailed("the Ray run failed: node lost"), RunFailed, True),
    (OSError(27, "File too large"), Exception, True),
])
def test_what_a_failed_file_output_keeps_for_resume(tmp_path, error, raised, kept):
    output, stats = file_output(tmp_path), ScoreStats(0, 0.0, "cpu")
    output.begin(resume=False, stats=stats)
    with pytest.raises(raised) as failure:
        write_scores(output, chunks(["A1"], ["A2"], fail_with=error), stats)
    assert not (tmp_path / "out.tsv").exists() and not (tmp_path / "out.tsv.rejects.tsv").exists()
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ([".out.tsv.journal", ".out.tsv.partial", ".out.tsv.rejects.tsv.partial"] if kept else [])
    if isinstance(error, KeyboardInterrupt):
        assert str(failure.value).endswith("after 2 rows; nothing is at " + f"{tmp_path / 'out.tsv'}. "
                                           "Rerun with --resume to continue from there")
    if isinstance(error, OSError):
        assert str(failure.value).startswith(f"cannot write {tmp_path / '.out.tsv.partial'}: File too large")
        assert failure.value.exit_code == 6


def test_a_stream_keeps_nothing_but_what_it_wrote(tmp_path):
    stream, stats = io.BytesIO(), ScoreStats(0, 0.0, "cpu")
    output = StreamOutput(stream, tmp_path / "rejects.tsv", TsvScores(LABELS))
    with pytest.raises(Interrupted, match="^interrupted after 1 rows$"):
        write_scores(output, chunks(["A1"], fail_with=KeyboardInterrupt()), stats)
    assert TsvScores.ids(stream.getvalue()) == ["A1"] and list(tmp_path.iterdir()) == []

    stream, stats = io.BytesIO(), ScoreStats(0, 0.0, "cpu")
    output = StreamOutput(stream, None, TsvScores(LABELS))
    write_scores(output, chunks(), stats)
    assert stream.getvalue().decode() == "\t".join(["Argument ID", *LABELS]) + "\n"  # header only
