import gzip
import io

import pandas as pd
import pytest

from argvalues.contract import (
    ARGUMENT_COLUMNS,
    LABELS,
    TEMPLATES,
    InputTemplate,
    iter_argument_chunks,
    read_arguments,
    read_labelled_arguments,
    read_labels,
)
from argvalues.errors import DataError

HEADER = "\t".join(ARGUMENT_COLUMNS)


def write(path, text):
    path.write_text(text)
    return path


@pytest.mark.integration
def test_labels_are_the_official_columns_in_order(data_dir):
    header = (data_dir / "labels-training.tsv").read_text().splitlines()[0].split("\t")
    assert header == ["Argument ID"] + LABELS


@pytest.mark.integration
def test_reads_the_real_training_file_completely(data_dir):
    arguments, targets = read_labelled_arguments(data_dir / "arguments-training.tsv", data_dir / "labels-training.tsv")
    assert len(arguments) == 5393 and targets.shape == (5393, 20)
    assert set(arguments["Stance"]) == {"in favor of", "against"}
    assert targets.sum() > 0


def test_missing_column_names_file_line_and_column(tmp_path):
    path = write(tmp_path / "a.tsv", "Argument ID\tConclusion\tPremise\nA1\tc\tp\n")
    with pytest.raises(DataError, match=r"a.tsv: line 1: missing column\(s\) \['Stance'\]"):
        read_arguments(path)


def test_row_with_too_many_fields_names_the_line(tmp_path):
    path = write(tmp_path / "a.tsv", f"{HEADER}\nA1\tc\tagainst\tp\nA2\tc\tagainst\tp\textra\n")
    with pytest.raises(DataError, match=r"a.tsv: .*line 3"):
        read_arguments(path)


def test_empty_file_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="empty"):
        read_arguments(write(tmp_path / "a.tsv", ""))


def test_header_only_yields_no_rows_but_checks_columns(tmp_path):
    assert list(iter_argument_chunks(write(tmp_path / "ok.tsv", HEADER + "\n"))) == []
    with pytest.raises(DataError, match="missing column"):
        list(iter_argument_chunks(write(tmp_path / "bad.tsv", "Argument ID\tPremise\n")))


def test_quotes_are_literal_and_bom_is_ignored(tmp_path):
    path = tmp_path / "a.tsv"
    path.write_bytes(("\ufeff" + HEADER + '\nA1\t"quoted" c\tagainst\tshe said "no"\n').encode())
    arguments = read_arguments(path)
    assert list(arguments.columns) == ARGUMENT_COLUMNS
    assert arguments.loc[0, "Premise"] == 'she said "no"'


def test_gzipped_input_by_extension(tmp_path):
    path = tmp_path / "a.tsv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(f"{HEADER}\nA1\tc\tagainst\tp\n")
    assert read_arguments(path).loc[0, "Argument ID"] == "A1"


def test_chunks_cover_every_row_in_order(tmp_path):
    rows = "".join(f"A{i}\tc\tagainst\tp{i}\n" for i in range(25))
    chunks = list(iter_argument_chunks(write(tmp_path / "a.tsv", HEADER + "\n" + rows), chunk_rows=7))
    assert [len(c) for c in chunks] == [7, 7, 7, 4]
    assert pd.concat(chunks)["Argument ID"].tolist() == [f"A{i}" for i in range(25)]


def test_duplicate_ids_are_rejected(tmp_path):
    with pytest.raises(DataError, match=r"line 3: column 'Argument ID': duplicate Argument ID 'A1'"):
        read_arguments(write(tmp_path / "a.tsv", f"{HEADER}\nA1\tc\tagainst\tp\nA1\tc\tagainst\tq\n"))


def labels_text(rows):
    return "\t".join(["Argument ID"] + LABELS) + "\n" + "".join(rows)


def test_unknown_label_column(tmp_path):
    header = "\t".join(["Argument ID"] + LABELS[:-1] + ["Universalism: everything"]) + "\n"
    with pytest.raises(DataError, match=r"unknown label column\(s\) \['Universalism: everything'\]"):
        read_labels(write(tmp_path / "l.tsv", header))


def test_label_value_other_than_0_or_1_names_line_and_column(tmp_path):
    bad = "A2\t" + "\t".join(["0"] * 4 + ["2"] + ["0"] * 15) + "\n"
    good = "A1\t" + "\t".join(["0"] * 20) + "\n"
    with pytest.raises(DataError, match=r"line 3: column 'Achievement' has value '2'"):
        read_labels(write(tmp_path / "l.tsv", labels_text([good, bad])))


def test_arguments_without_labels_name_the_line(tmp_path):
    arguments = write(tmp_path / "a.tsv", f"{HEADER}\nA1\tc\tagainst\tp\nA2\tc\tagainst\tq\n")
    labels = write(tmp_path / "l.tsv", labels_text(["A1\t" + "\t".join(["1"] + ["0"] * 19) + "\n"]))
    with pytest.raises(DataError, match=r"a.tsv: line 3: Argument ID 'A2' has no labels"):
        read_labelled_arguments(arguments, labels)


def test_labels_align_with_argument_order(tmp_path):
    arguments = write(tmp_path / "a.tsv", f"{HEADER}\nA2\tc\tagainst\tp\nA1\tc\tagainst\tq\n")
    labels = write(tmp_path / "l.tsv", labels_text(["A1\t" + "\t".join(["1"] + ["0"] * 19) + "\n",
                                                    "A2\t" + "\t".join(["0", "1"] + ["0"] * 18) + "\n"]))
    _, targets = read_labelled_arguments(arguments, labels)
    assert targets[0, 1] == 1 and targets[1, 0] == 1 and targets.sum() == 2


def test_templates_render_fields():
    frame = pd.DataFrame([["A1", "We should X", "against", "because Y"]], columns=ARGUMENT_COLUMNS)
    text, pair = TEMPLATES["premise-stance-conclusion"].render(frame)
    assert text == ["because Y"] and pair == ["against We should X"]
    text, pair = TEMPLATES["premise"].render(frame)
    assert text == ["because Y"] and pair is None


def test_template_with_unknown_field_is_rejected():
    with pytest.raises(DataError, match="unknown fields"):
        InputTemplate.from_dict({"text": "{Premise} {Topic}"})


def test_stdin_like_stream(tmp_path):
    stream = io.BytesIO(f"{HEADER}\nA1\tc\tagainst\tp\n".encode())
    assert len(list(iter_argument_chunks(stream))[0]) == 1


def test_seen_ids_finds_every_duplicate_across_merges():
    import random

    from argvalues.rows import SeenIds

    seen, reference, rng = SeenIds(), set(), random.Random(7)
    for _ in range(50_000):  # several in-place merges of 8192 pending hashes each
        identifier = f"arg-{rng.randrange(30_000)}"
        assert seen.add(identifier) == (identifier not in reference)
        reference.add(identifier)
