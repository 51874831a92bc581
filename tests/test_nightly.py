"""What a nightly job relies on: one run per output (the lock), --max-bad-rows, the sidecar OUT.meta.json."""

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from tiny_models import EXAMPLES

from argvalues.contract import ARGUMENT_COLUMNS
from argvalues.digest import sha256_of
from argvalues.errors import OutputBusy
from scorer.cli import score
from scorer.lock import OutputLock, lock_path
from scorer.options import ScoreOptions
from scorer.score import score_files

SCORE = [sys.executable, "-c", "from scorer.cli import main; main()"]
ROWS = 20_000
CHUNK = ["--chunk-rows", "250"]
HEADER = "\t".join(ARGUMENT_COLUMNS)


def write_corpus(path: Path, rows: int, prefix: str) -> Path:
    examples = [line.split("\t") for line in (EXAMPLES / "arguments.tsv").read_text().splitlines()[1:]]
    with open(path, "w") as handle:
        handle.write(HEADER + "\n")
        for i in range(rows):
            row = examples[i % len(examples)]
            handle.write("\t".join([f"{prefix}{i:06d}", row[1], row[2], f"{row[3]} (case {i})"]) + "\n")
    return path


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    """Two inputs with different IDs (a night's validation and test arguments, say)."""
    folder = tmp_path_factory.mktemp("corpora")
    return write_corpus(folder / "first.tsv", ROWS, "F"), write_corpus(folder / "second.tsv", ROWS // 4, "S")


@pytest.fixture(scope="module")
def lone_run(tiny_exported, corpora, tmp_path_factory):
    out = tmp_path_factory.mktemp("lone") / "scores.tsv"
    done = subprocess.run([*SCORE, "--model", str(tiny_exported), "--quiet", *CHUNK, str(corpora[0]), "-o", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return out.read_bytes()


def start(model, source, out, *extra):
    return subprocess.Popen([*SCORE, "--model", str(model), "--quiet", *CHUNK, *extra, str(source), "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, process, timeout=120):
    began = time.monotonic()
    while not path.exists():
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() - began < timeout, f"{path} never appeared"
        time.sleep(0.01)


def journaled_rows(out: Path) -> int:
    journal = out.with_name(f".{out.name}.journal")
    try:
        return json.loads(journal.read_text())["progress"]["rows"]
    except (OSError, ValueError):
        return 0


def run(model, *args):
    return CliRunner().invoke(score, ["--model", str(model), "--quiet", *map(str, args)], catch_exceptions=False)


# -- the lock ------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 0.5, 2.0])
def test_a_second_run_on_the_same_output_is_refused_and_the_first_is_untouched(tiny_exported, corpora, lone_run,
                                                                             tmp_path, delay):
    out = tmp_path / "same.tsv"
    first = start(tiny_exported, corpora[0], out)
    wait_for(lock_path(out), first)  # the first run holds the lock from here on
    time.sleep(delay)
    second = subprocess.run([*SCORE, "--model", str(tiny_exported), "--quiet", *CHUNK, str(corpora[1]), "-o", str(out)],
                            capture_output=True, text=True, timeout=120)
    assert first.poll() is None, "the first run ended before the second tried: the corpus is too small for this test"
    assert second.returncode == 8, second.stderr
    assert second.stderr.strip() == (f"Error: {out} is being written by another run (process {first.pid}); wait for "
                                     f"it to finish, or write elsewhere with -o")
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert out.read_bytes() == lone_run
    assert sorted(p.name for p in tmp_path.iterdir()) == ["same.tsv", "same.tsv.meta.json"]


@pytest.mark.slow
def test_a_lock_left_by_kill_9_blocks_neither_resume_nor_a_fresh_run(tiny_exported, corpora, lone_run, tmp_path):
    out = tmp_path / "scores.tsv"
    for extra in (["--resume"], []):
        process = start(tiny_exported, corpora[0], out)
        while journaled_rows(out) == 0:
            assert process.poll() is None, process.communicate()[1]
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert lock_path(out).exists() and not out.exists()  # the killed run's lock file is still there
        done = subprocess.run([*SCORE, "--model", str(tiny_exported), *CHUNK, *extra, str(corpora[0]), "-o", str(out)],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert ("resuming" if extra else "starting") in done.stderr
        assert out.read_bytes() == lone_run
        assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.tsv", "scores.tsv.meta.json"]
        assert json.loads((tmp_path / "scores.tsv.meta.json").read_text())["resumed"] is bool(extra)
        out.unlink()


def test_the_lock_is_held_by_one_holder_at_a_time_and_removed_after(tmp_path):
    target = tmp_path / "sub" / "out.tsv"
    with OutputLock(target):
        assert lock_path(target).read_text().strip() == str(os.getpid())
        with pytest.raises(OutputBusy, match=rf"^{target} is being written by another run \(process {os.getpid()}\)"):
            OutputLock(target).acquire()
    assert list(target.parent.iterdir()) == []
    lock_path(target).write_text("12345\n")  # left by a killed run: no process holds it
    with OutputLock(target):
        pass
    assert not lock_path(target).exists()


def test_an_output_folder_that_cannot_be_made_is_one_line(tiny_exported, tmp_path):
    (tmp_path / "taken").write_text("a file where -o wants a folder")
    result = run(tiny_exported, EXAMPLES / "to-score.tsv", "-o", tmp_path / "taken" / "out.tsv")
    assert result.exit_code == 6
    assert result.stderr.strip().startswith(f"Error: cannot write {tmp_path / 'taken' / '.out.tsv.lock'}: ")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_run_on_a_locked_output_touches_nothing(tiny_exported, tmp_path):
    out = tmp_path / "scores.tsv"
    out.write_text("last night's scores\n")
    with OutputLock(out):
        result = run(tiny_exported, EXAMPLES / "to-score.tsv", "-o", out)
        assert result.exit_code == 8 and len(result.stderr.strip().splitlines()) == 1
        assert "is being written by another run" in result.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == [".scores.tsv.lock", "scores.tsv"]
    assert out.read_text() == "last night's scores\n"
    assert run(tiny_exported, EXAMPLES / "to-score.tsv").exit_code == 0  # standard output takes no lock


# -- --max-bad-rows ------------------------------------------------------------------------------------

@pytest.fixture
def three_bad_of_thirteen(tmp_path):
    lines = (EXAMPLES / "arguments.tsv").read_text().splitlines()[:11]
    source = tmp_path / "in.tsv"
    bad = ["B1\tc\tsideways\tp", "B2\tc\tagainst", "\tc\tagainst\tp"]
    source.write_text("\n".join([lines[0], bad[0], *lines[1:6], bad[1], *lines[6:], bad[2]]) + "\n")
    return source


@pytest.mark.parametrize("limit, code", [("3", 0), ("2", 3), ("0", 3), ("30%", 0), ("23%", 3), ("0%", 3)])
def test_more_bad_rows_than_allowed_fail_the_job_and_publish_nothing(tiny_exported, three_bad_of_thirteen, tmp_path,
                                                                     limit, code):
    out = tmp_path / "out.tsv"
    result = run(tiny_exported, "--on-bad-row", "skip", "--max-bad-rows", limit, three_bad_of_thirteen, "-o", out)
    assert result.exit_code == code, result.output
    if code == 0:
        assert out.exists() and "warning: skipped 3 bad row(s)" in result.stderr
        return
    allowed = limit if limit.isdigit() else f"{limit[:-1]}% of 13 read"
    assert result.stderr.strip() == (f"Error: 3 bad row(s) rejected, more than --max-bad-rows allows ({allowed}); the "
                                     f"first: {three_bad_of_thirteen}: line 2: column 'Stance': unknown value 'sideways'; "
                                     f"expected one of ['in favor of', 'against'] (or 'in favour of', 'pro', 'for', 'con'; "
                                     f"case and spaces aside)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tsv"]


def test_a_count_limit_stops_at_the_first_chunk_over_it(tiny_exported, three_bad_of_thirteen, tmp_path):
    result = run(tiny_exported, "--on-bad-row", "skip", "--max-bad-rows", "0", "--chunk-rows", "1",
                 three_bad_of_thirteen, "-o", tmp_path / "out.tsv")
    assert result.exit_code == 3
    assert result.stderr.startswith("Error: 1 bad row(s) rejected, more than --max-bad-rows allows (0); the first: ")


@pytest.mark.parametrize("args, message", [
    (["--on-bad-row", "skip", "--max-bad-rows", "ten"], "--max-bad-rows takes a number of rows (10) or a percentage"),
    (["--on-bad-row", "skip", "--max-bad-rows", "-1"], "--max-bad-rows takes a number of rows"),
    (["--on-bad-row", "skip", "--max-bad-rows", "150%"], "--max-bad-rows takes a number of rows"),
    (["--max-bad-rows", "5"], "--max-bad-rows applies with --on-bad-row skip"),
])
def test_bad_limits_are_refused_before_reading(tiny_exported, tmp_path, args, message):
    result = run(tiny_exported, *args, EXAMPLES / "to-score.tsv", "-o", tmp_path / "out.tsv")
    assert result.exit_code == 1 and message in result.stderr
    assert list(tmp_path.iterdir()) == []


# -- the sidecar --------------------------------------------------------------------------------------

def test_the_sidecar_says_what_produced_the_output(tiny_exported, three_bad_of_thirteen, tmp_path):
    out = tmp_path / "scores.tsv"
    before = datetime.now().astimezone()
    result = CliRunner().invoke(score, ["--model", str(tiny_exported), "--on-bad-row", "skip", "--variant", "fp32",
                                        str(three_bad_of_thirteen), "-o", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "scores.tsv.meta.json").read_text())
    assert meta["output"] == {"path": str(out.resolve()), "sha256": sha256_of(out), "bytes": out.stat().st_size}
    assert meta["rejects_file"] == f"{out}.rejects.tsv"
    assert meta["model"]["directory"] == str(tiny_exported.resolve())
    assert meta["model"]["manifest_sha256"] == sha256_of(tiny_exported / "manifest.json")
    assert meta["model"]["files"]["model.onnx"] == sha256_of(tiny_exported / "model.onnx")
    assert set(meta["model"]["files"]) == {"model.onnx", "tokenizer.json", "argvalues.json"}
    assert (meta["variant"], meta["provider"], meta["engine"]) == ("fp32", "CPUExecutionProvider", "local")
    assert f"scoring with {meta['provider']}, {meta['variant']} variant" in result.stderr
    assert meta["options"]["on_bad_row"] == "skip" and meta["options"]["chunk_rows"] == 8192
    assert {"python", "argvalues", "tokenizers", "numpy", "pandas"} <= set(meta["versions"])
    assert "onnxruntime-gpu" in meta["versions"] or "onnxruntime" in meta["versions"]
    source = three_bad_of_thirteen
    assert meta["inputs"] == [{"path": str(source.resolve()), "bytes": source.stat().st_size,
                               "sha256": sha256_of(source)}]
    assert meta["rows"] == {"read": 13, "scored": 10, "rejected": 3}
    started, finished = (datetime.fromisoformat(meta[k].replace("Z", "+00:00")) for k in ("started", "finished"))
    assert meta["started"].endswith("Z") and before.replace(microsecond=0) <= started <= finished
    assert meta["resumed"] is False


def test_standard_input_is_named_in_the_sidecar_and_standard_output_has_none(tiny_exported, tmp_path):
    out = tmp_path / "scores.tsv"
    result = CliRunner().invoke(score, ["--model", str(tiny_exported), "--quiet", "-", "-o", str(out)],
                                input=(EXAMPLES / "to-score.tsv").read_text(), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "scores.tsv.meta.json").read_text())["inputs"] == [{"path": "-"}]
    stats = score_files([str(EXAMPLES / "to-score.tsv")], None, ScoreOptions(model_dir=str(tiny_exported)))
    assert stats.rows == 12 and sorted(p.name for p in tmp_path.iterdir()) == ["scores.tsv", "scores.tsv.meta.json"]
