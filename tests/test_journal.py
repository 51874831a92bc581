"""The journal behind ``score -o`` and ``--resume`` (scorer.journal): what it records, refuses and renames."""

import json

import pytest

from argvalues.errors import ResumeError
from scorer.journal import JOURNAL_VERSION, Journal, Progress, partial_path, write_atomically

FINGERPRINT = {"inputs": [{"path": "/in.tsv", "sha256": "aa"}], "model": {"model.onnx": "bb"},
               "options": {"chunk_rows": 100, "engine": "local"}}


def journal_with_partials(tmp_path, fingerprint=FINGERPRINT, output=b"header\nrow 1\n", rejects=b"File\n"):
    journal = Journal(tmp_path / "out.tsv", tmp_path / "out.tsv.rejects.tsv", fingerprint)
    journal.partial.write_bytes(output)
    journal.rejects_partial.write_bytes(rejects)
    return journal


def test_paths_are_hidden_beside_the_target(tmp_path):
    journal = Journal(tmp_path / "out.tsv", None, FINGERPRINT)
    assert journal.partial == tmp_path / ".out.tsv.partial" == partial_path(tmp_path / "out.tsv")
    assert journal.path == tmp_path / ".out.tsv.journal"
    assert journal.rejects_partial is None and not journal.exists()


def test_saved_progress_loads_back(tmp_path):
    journal = journal_with_partials(tmp_path)
    progress = Progress(position={"a.tsv": 3}, output_bytes=13, rejects_bytes=5, rows=40, rejected=2)
    journal.save(progress)
    record = json.loads(journal.path.read_text())
    assert record["version"] == JOURNAL_VERSION and record["finished"] is False
    again = Journal(tmp_path / "out.tsv", tmp_path / "out.tsv.rejects.tsv", FINGERPRINT)
    assert again.load() == progress and not again.finished


@pytest.mark.parametrize("part", ["inputs", "model", "options"])
def test_resume_is_refused_when_a_fingerprint_part_changed(tmp_path, part):
    journal_with_partials(tmp_path).save(Progress(output_bytes=13, rejects_bytes=5))
    changed = {**FINGERPRINT, part: {"options": {"chunk_rows": 50, "engine": "local"}}.get(part, [])}
    with pytest.raises(ResumeError, match=rf"^cannot resume {tmp_path / 'out.tsv'}: the {part} changed since"):
        Journal(tmp_path / "out.tsv", tmp_path / "out.tsv.rejects.tsv", changed).load()


def test_the_refusal_says_what_changed_in_the_options(tmp_path):
    journal_with_partials(tmp_path).save(Progress(output_bytes=13, rejects_bytes=5))
    changed = {**FINGERPRINT, "options": {"chunk_rows": 100, "engine": "ray"}}
    with pytest.raises(ResumeError, match="engine: 'local' then, 'ray' now"):
        Journal(tmp_path / "out.tsv", tmp_path / "out.tsv.rejects.tsv", changed).load()


def test_a_partial_file_shorter_than_recorded_is_refused(tmp_path):
    journal = journal_with_partials(tmp_path)
    journal.save(Progress(output_bytes=13, rejects_bytes=5))
    journal.partial.write_bytes(b"head")
    with pytest.raises(ResumeError, match="is missing or shorter than the journal records"):
        journal.load()


def test_an_unreadable_or_foreign_journal_is_refused(tmp_path):
    journal = journal_with_partials(tmp_path)
    journal.path.write_text("{not json")
    with pytest.raises(ResumeError, match="the journal is unreadable"):
        journal.load()
    journal.save(Progress())
    record = json.loads(journal.path.read_text())
    journal.path.write_text(json.dumps({**record, "version": JOURNAL_VERSION - 1}))
    with pytest.raises(ResumeError, match="written by another version"):
        journal.load()


def test_finish_renames_into_place_and_can_be_repeated_after_a_crash(tmp_path):
    journal = journal_with_partials(tmp_path)
    progress = Progress(output_bytes=13, rejects_bytes=5, rows=1)
    journal.save(progress, finished=True)
    journal.rejects_partial.rename(journal.rejects_target)  # the crash came between the two renames
    again = Journal(tmp_path / "out.tsv", tmp_path / "out.tsv.rejects.tsv", FINGERPRINT)
    assert again.load() == progress and again.finished
    again.finish(progress)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.tsv", "out.tsv.rejects.tsv"]
    assert (tmp_path / "out.tsv").read_bytes() == b"header\nrow 1\n"


def test_discard_removes_every_file_of_the_run(tmp_path):
    journal = journal_with_partials(tmp_path)
    journal.save(Progress())
    journal.discard()
    assert list(tmp_path.iterdir()) == []


def test_write_atomically_replaces_the_whole_file(tmp_path):
    target = tmp_path / "record.json"
    target.write_text("old")
    write_atomically(target, b"new")
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["record.json"]
