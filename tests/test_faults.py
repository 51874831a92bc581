"""Injected faults: kill -9 at random points, SIGTERM, Ctrl-C, a full disk, changed inputs on resume."""

import json
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tiny_models import EXAMPLES

from argvalues.contract import ARGUMENT_COLUMNS

SCORE = [sys.executable, "-c", "from scorer.cli import main; main()"]
ROWS = 20_000
CHUNK = ["--chunk-rows", "250"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A 20k-row input with unique IDs, made from the shipped examples."""
    lines = (EXAMPLES / "arguments.tsv").read_text().splitlines()
    rows = [line.split("\t") for line in lines[1:]]
    path = tmp_path_factory.mktemp("corpus") / "corpus.tsv"
    with open(path, "w") as handle:
        handle.write("\t".join(ARGUMENT_COLUMNS) + "\n")
        for i in range(ROWS):
            row = rows[i % len(rows)]
            handle.write("\t".join([f"R{i:06d}", row[1], row[2], f"{row[3]} (case {i})"]) + "\n")
    return path


def start(model, corpus, out, *extra, **popen):
    return subprocess.Popen([*SCORE, "--model", str(model), "--quiet", *CHUNK, *extra, str(corpus), "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def finish(process, timeout=120):
    stdout, stderr = process.communicate(timeout=timeout)
    return process.returncode, stderr


@pytest.fixture(scope="module")
def reference(tiny_exported, corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "scores.tsv"
    began = time.perf_counter()
    code, stderr = finish(start(tiny_exported, corpus, out))
    assert code == 0, stderr
    return out.read_bytes(), time.perf_counter() - began


def journaled_rows(out: Path) -> int:
    journal = out.with_name(f".{out.name}.journal")
    return json.loads(journal.read_text())["progress"]["rows"] if journal.is_file() else 0


@pytest.mark.slow
def test_kill_9_at_random_points_then_resume_is_byte_identical(tiny_exported, corpus, reference, tmp_path):
    expected, seconds = reference
    rng = random.Random(20261125)
    kills = mid_run = runs = 0
    while kills < 24:
        runs += 1
        out = tmp_path / f"run-{runs}" / "scores.tsv"
        out.parent.mkdir()
        process = start(tiny_exported, corpus, out)
        while True:  # kill it at random points, resuming each time, until a resume gets to finish
            time.sleep(rng.uniform(0.05, seconds))
            if process.poll() is not None:
                break
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills += 1
            if out.exists():  # killed after its final rename: the output must then be complete
                assert out.read_bytes() == expected, "a killed run left an incomplete file at the output path"
            done = journaled_rows(out)
            mid_run += 0 < done < ROWS
            process = start(tiny_exported, corpus, out, "--resume")
        code, stderr = finish(process)
        assert code == 0, stderr
        assert out.read_bytes() == expected, f"run {runs}: resumed output differs"
        assert sorted(p.name for p in out.parent.iterdir()) == ["scores.tsv", "scores.tsv.meta.json"]  # no partial, journal, lock
    assert mid_run >= 20, f"only {mid_run} of {kills} kills landed mid-run"


@pytest.mark.slow
def test_sigterm_and_ctrl_c_leave_nothing_at_the_target_and_resume(tiny_exported, corpus, reference, tmp_path):
    expected, seconds = reference
    for signum, code_expected in ((signal.SIGTERM, 143), (signal.SIGINT, 130)):
        out = tmp_path / f"{signum}" / "scores.tsv"
        out.parent.mkdir()
        # As from a terminal: a shell running this suite in the background hands its children
        # SIGINT ignored, and Python then keeps ignoring it.
        process = start(tiny_exported, corpus, out, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        while journaled_rows(out) == 0:
            time.sleep(0.02)
        process.send_signal(signum)
        code, stderr = finish(process)
        assert code == code_expected, stderr
        assert stderr.strip().startswith("Error: ") and "Rerun with --resume" in stderr
        assert len(stderr.strip().splitlines()) == 1 and not out.exists()
        code, stderr = finish(start(tiny_exported, corpus, out, "--resume"))
        assert code == 0, stderr
        assert out.read_bytes() == expected


@pytest.mark.slow
def test_a_full_disk_fails_cleanly_and_can_be_resumed(tiny_exported, corpus, reference, tmp_path):
    """RLIMIT_FSIZE stands in for a full disk: writes past it fail with EFBIG (Python ignores SIGXFSZ)."""
    expected, _ = reference
    out = tmp_path / "scores.tsv"
    limit = len(expected) // 3

    def small_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    code, stderr = finish(start(tiny_exported, corpus, out, preexec_fn=small_disk))
    assert code == 6, stderr
    assert stderr.strip().startswith(f"Error: cannot write {out.parent / '.scores.tsv.partial'}: File too large")
    assert len(stderr.strip().splitlines()) == 1
    assert not out.exists()
    assert 0 < journaled_rows(out) < ROWS
    code, stderr = finish(start(tiny_exported, corpus, out, "--resume"))
    assert code == 0, stderr
    assert out.read_bytes() == expected


@pytest.mark.slow
def test_a_full_disk_on_standard_output_is_one_line(tiny_exported, corpus, tmp_path):
    limit = 50_000

    def small_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    with open(tmp_path / "piped.tsv", "w") as sink:
        process = subprocess.Popen([*SCORE, "--model", str(tiny_exported), "--quiet", str(corpus)], stdout=sink,
                                   stderr=subprocess.PIPE, text=True, preexec_fn=small_disk)
        _, stderr = process.communicate(timeout=120)
    assert process.returncode == 6 and stderr.strip() == "Error: cannot write: File too large"


@pytest.mark.slow
def test_resume_is_refused_when_the_input_model_or_options_changed(tiny_exported, corpus, tmp_path):
    out = tmp_path / "scores.tsv"
    process = start(tiny_exported, corpus, out)
    while journaled_rows(out) == 0:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()

    changed_input = tmp_path / "corpus.tsv"
    shutil.copy(corpus, changed_input)
    with open(changed_input, "a") as handle:
        handle.write("Z1\tWe should X\tagainst\tone more row\n")
    changed_model = tmp_path / "model"
    shutil.copytree(tiny_exported, changed_model)
    config = json.loads((changed_model / "argvalues.json").read_text())
    config["thresholds"] = [0.25] * len(config["thresholds"])
    (changed_model / "argvalues.json").write_text(json.dumps(config))

    attempts = {
        "inputs": [*SCORE, "--model", str(tiny_exported), *CHUNK, "--resume", str(changed_input), "-o", str(out)],
        "model": [*SCORE, "--model", str(changed_model), *CHUNK, "--resume", str(corpus), "-o", str(out)],
        "options": [*SCORE, "--model", str(tiny_exported), "--chunk-rows", "100", "--resume", str(corpus), "-o", str(out)],
    }
    for part, command in attempts.items():
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert result.returncode == 7, result.stderr
        message = result.stderr.strip().splitlines()[-1]
        assert message.startswith(f"Error: cannot resume {out}: the {part} changed since the interrupted run")
        assert not out.exists()


@pytest.mark.slow
def test_resume_without_an_unfinished_run_starts_from_the_beginning(tiny_exported, corpus, reference, tmp_path):
    out = tmp_path / "scores.tsv"
    code, stderr = finish(start(tiny_exported, corpus, out, "--resume"))
    assert code == 0, stderr
    assert out.read_bytes() == reference[0]


def test_resume_needs_a_file_output(tiny_exported, corpus):
    result = subprocess.run([*SCORE, "--model", str(tiny_exported), "--resume", str(corpus)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1 and "--resume needs -o OUTPUT" in result.stderr


def test_the_journal_never_records_bytes_that_are_not_on_disk(tiny_exported, tmp_path, monkeypatch):
    """What kill -9 relies on: at every journal save, the partial files on disk (not in a buffer)
    already hold at least the bytes the journal records."""
    from scorer.journal import Journal
    from scorer.score import ScoreOptions, score_files

    lines = (EXAMPLES / "arguments.tsv").read_text().splitlines()
    source = tmp_path / "with-bad-rows.tsv"
    source.write_text("\n".join(lines[:20] + ["B1\tc\tsideways\tp"] + lines[20:]) + "\n")
    saves = []
    save = Journal.save

    def checked_save(journal, progress, finished=False):
        for partial, recorded in ((journal.partial, progress.output_bytes),
                                  (journal.rejects_partial, progress.rejects_bytes)):
            assert partial.stat().st_size >= recorded > 0, f"{partial.name}: journal records {recorded} bytes"
        saves.append(progress.rows)
        save(journal, progress, finished)

    monkeypatch.setattr(Journal, "save", checked_save)
    options = ScoreOptions(model_dir=str(tiny_exported), chunk_rows=7, on_bad_row="skip")
    stats = score_files([str(source)], str(tmp_path / "scores.tsv"), options)
    assert stats.rows == len(lines) - 1 and stats.rejected == 1
    assert saves[0] == 0 and len(saves) >= 3  # the header's save, one per chunk, the finished one
