"""The row reader (argvalues.rows): chunks, line numbers, rejects, the ID set, and its refusals."""

import gzip
import io

import pytest

from argvalues.contract import STANCE_SPELLINGS
from argvalues.errors import DataError
from argvalues.rows import REJECTS_HEADER, ArgumentRows, Reject, SeenIds

COLUMNS = ["Argument ID", "Conclusion", "Stance", "Premise"]
HEADER = "\t".join(COLUMNS)


def reader(text: str | bytes, on_bad_row="skip", seen=None, **rules):
    data = text.encode() if isinstance(text, str) else text
    rules = {"nonempty": ("Conclusion", "Premise"), "spellings": {"Stance": STANCE_SPELLINGS}, **rules}
    return ArgumentRows(io.BytesIO(data), COLUMNS, on_bad_row=on_bad_row, seen=seen, **rules)


def rows(n, start=0):
    return [f"A{i}\tconclusion {i}\tagainst\tpremise {i}" for i in range(start, start + n)]


def test_chunks_hold_chunk_rows_good_rows_with_their_line_numbers():
    chunks = list(reader("\n".join([HEADER, *rows(7)]) + "\n").chunks(3))
    assert [len(c.frame) for c in chunks] == [3, 3, 1]
    assert [c.lines for c in chunks] == [[2, 3, 4], [5, 6, 7], [8]]
    assert list(chunks[0].frame.columns) == COLUMNS
    assert chunks[2].frame.iloc[0].tolist() == ["A6", "conclusion 6", "against", "premise 6"]


def test_rejects_travel_with_the_chunk_they_were_met_in():
    lines = [HEADER, *rows(2), "B1\tc\tsideways\tp", *rows(2, 2), "", "B2\tc\tagainst", *rows(1, 4)]
    chunks = list(reader("\n".join(lines) + "\n").chunks(2))
    assert [len(c.frame) for c in chunks] == [2, 2, 1]
    assert [[r.line for r in c.rejects] for c in chunks] == [[], [4], [8]]
    assert [c.lines for c in chunks] == [[2, 3], [5, 6], [9]]  # line 7 is blank: no row, still counted
    assert chunks[1].rejects[0].column == "Stance" and chunks[2].rejects[0].column == ""


def test_a_file_of_rejects_only_yields_one_empty_chunk_with_them():
    chunks = list(reader("\n".join([HEADER, "B1\tc\tsideways\tp", "\tc\tagainst\tp"]) + "\n").chunks(5))
    assert len(chunks) == 1 and chunks[0].frame.empty
    assert [r.reason for r in chunks[0].rejects] == [
        "unknown value 'sideways'; expected one of ['in favor of', 'against'] (or 'in favour of', 'pro', 'for', "
        "'con'; case and spaces aside)", "empty Argument ID"]


@pytest.mark.parametrize("written, read", [
    ("in favor of", "in favor of"), ("In Favor Of", "in favor of"), ("  in   favour of ", "in favor of"),
    ("pro", "in favor of"), ("PRO", "in favor of"), ("for", "in favor of"), ("against ", "against"),
    ("Against", "against"), ("con", "against"), ("\tcon", None), ("neutral", None), ("pro-ish", None), ("", None)])
def test_stances_are_read_as_people_write_them(written, read):
    line = "A1\tc\t" + written.replace("\t", "") + "\tp" if written != "\tcon" else "A1\tc\t\tcon\tp"
    chunk = next(reader(f"{HEADER}\n{line}\n").chunks(5))
    if read is None:
        assert chunk.frame.empty and len(chunk.rejects) == 1
    else:
        assert chunk.frame["Stance"].tolist() == [read] and not chunk.rejects


def test_header_only_yields_nothing_and_an_empty_file_is_an_error():
    assert list(reader(HEADER + "\n").chunks(5)) == []
    with pytest.raises(DataError, match="the file is empty"):
        list(reader("").chunks(5))


def test_fail_stops_at_the_first_bad_row_naming_file_line_and_column():
    with pytest.raises(DataError, match=r"^<stream>: line 4: column 'Premise': empty Premise$"):
        list(reader("\n".join([HEADER, *rows(2), "B1\tc\tagainst\t "]) + "\n", on_bad_row="fail").chunks(1))


def test_only_the_required_columns_are_kept_whatever_their_order():
    text = "Premise\tExtra\tStance\tConclusion\tArgument ID\np\tx\tagainst\tc\tA1\n"
    frame = next(reader(text).chunks(5)).frame
    assert frame.to_dict("records") == [{"Argument ID": "A1", "Conclusion": "c", "Stance": "against", "Premise": "p"}]


def test_header_problems_are_refused_on_line_1():
    with pytest.raises(DataError, match=r"line 1: column\(s\) \['Stance'\] appear more than once"):
        list(reader(HEADER + "\tStance\n").chunks(5))
    with pytest.raises(DataError, match=r"missing column\(s\) \['Premise'\] \(is 'premise' meant to be 'Premise'\?\)"):
        list(reader(HEADER.replace("Premise", "premise") + "\n").chunks(5))
    with pytest.raises(DataError, match="line 1: the header is not UTF-8 text"):
        list(reader(b"\xff" + HEADER.encode() + b"\n").chunks(5))


def test_ids_are_unique_across_readers_that_share_a_seen_set():
    seen = SeenIds()
    first = list(reader("\n".join([HEADER, *rows(3)]) + "\n", seen=seen).chunks(10))
    second = list(reader("\n".join([HEADER, *rows(4, 2)]) + "\n", seen=seen).chunks(10))
    assert first[0].frame["Argument ID"].tolist() == ["A0", "A1", "A2"]
    assert second[0].frame["Argument ID"].tolist() == ["A3", "A4", "A5"]
    assert [r.reason for r in second[0].rejects] == ["duplicate Argument ID 'A2'"]


def test_the_seen_set_remembers_every_id_through_its_merges_and_growth():
    seen = SeenIds()
    ids = [f"argument-{i}" for i in range(100_000)]  # past the 8192 pending IDs and the first 65536-slot buffer
    assert all(seen.add(i) for i in ids)
    assert not any(seen.add(i) for i in ids[::997])
    assert seen.add("argument-100000") and not seen.add("argument-100000")


def test_a_gzip_file_is_read_and_a_truncated_one_fails_naming_the_last_line(tmp_path):
    packed = gzip.compress(("\n".join([HEADER, *rows(3000)]) + "\n").encode())
    whole, cut = tmp_path / "whole.tsv.gz", tmp_path / "cut.tsv.gz"
    whole.write_bytes(packed)
    cut.write_bytes(packed[: len(packed) // 2])
    assert sum(len(c.frame) for c in ArgumentRows(whole, COLUMNS).chunks(1000)) == 3000
    with pytest.raises(DataError, match=rf"^{cut}: after line \d+: the compressed file is truncated or corrupt"):
        list(ArgumentRows(cut, COLUMNS).chunks(1000))
    with pytest.raises(DataError, match="no such file"):
        list(ArgumentRows(tmp_path / "missing.tsv", COLUMNS).chunks(10))


def test_a_reject_keeps_its_raw_row_on_one_escaped_line():
    reject = Reject("in.tsv", 7, "", "5 fields, expected 4", "a\tb\\c\rd")
    assert reject.tsv_line() == "in.tsv\t7\t\t5 fields, expected 4\ta\\tb\\\\c\\rd\n"
    assert reject.tsv_line().count("\t") == REJECTS_HEADER.count("\t")
    assert reject.message() == "in.tsv: line 7: 5 fields, expected 4"
    assert Reject("in.tsv", 7, "Stance", "bad", "").message() == "in.tsv: line 7: column 'Stance': bad"


def test_an_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="on_bad_row must be one of"):
        ArgumentRows(io.BytesIO(b""), COLUMNS, on_bad_row="ignore")
