"""-o never destroys what it names: devices, FIFOs, sockets and descriptors are written as streams,
a link's file is replaced and the link kept, an input is never an output, messages stay short, and
a run that scored nothing is no success. Device nodes are made with mknod inside the test's own
directory: no test points -o at the machine's /dev."""

import errno
import os
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from tiny_models import EXAMPLES

from argvalues.contract import ARGUMENT_COLUMNS
from argvalues.errors import NothingScored, UsageError
from scorer.cli import score
from scorer.options import ScoreOptions
from scorer.score import score_files
from scorer.target import destination, output_target

SCORE = [sys.executable, "-c", "from scorer.cli import main; main()"]
HEADER = "\t".join(ARGUMENT_COLUMNS)
NULL, FULL = os.makedev(1, 3), os.makedev(1, 7)


def run(model, *args, input=None):
    return CliRunner().invoke(score, ["--model", str(model), "--quiet", *map(str, args)], input=input,
                              catch_exceptions=False)


def device_node(folder: Path, name: str, device: int, kind: int = stat.S_IFCHR) -> Path:
    """A device node in ``folder`` (never the machine's /dev) that the test can write to, else skip."""
    path = folder / name
    try:
        os.mknod(path, kind | 0o666, device)
    except PermissionError as error:
        pytest.skip(f"mknod refused here ({error.strerror}): device nodes need root")
    if kind == stat.S_IFCHR:
        try:
            os.close(os.open(path, os.O_WRONLY))
        except OSError as error:
            if error.errno in (errno.EACCES, errno.EPERM):
                path.unlink()
                pytest.skip(f"device nodes cannot be opened on this filesystem ({error.strerror}: a nodev mount)")
            raise
    return path


@pytest.fixture()
def corpus(tmp_path):
    source = tmp_path / "in" / "corpus.tsv"
    source.parent.mkdir()
    source.write_bytes((EXAMPLES / "arguments.tsv").read_bytes())
    return source


@pytest.fixture()
def reference(tiny_exported, corpus, tmp_path):
    """The bytes a regular -o file gets."""
    out = tmp_path / "reference" / "scores.tsv"
    assert run(tiny_exported, corpus, "-o", out).exit_code == 0
    return out.read_bytes()


def test_a_character_device_is_written_as_a_stream_and_stays_a_device(tiny_exported, corpus, tmp_path):
    folder = tmp_path / "dev"
    folder.mkdir()
    null = device_node(folder, "null", NULL)
    result = run(tiny_exported, "--on-bad-row", "skip", corpus, "-o", null)
    assert result.exit_code == 0, result.output
    assert stat.S_ISCHR(null.stat().st_mode) and null.stat().st_rdev == NULL
    assert sorted(p.name for p in folder.iterdir()) == ["null"]  # no lock, journal, sidecar or rejects file


def test_a_full_device_fails_with_exit_6_and_stays_a_device(tiny_exported, corpus, tmp_path):
    folder = tmp_path / "dev"
    folder.mkdir()
    full = device_node(folder, "full", FULL)
    result = run(tiny_exported, corpus, "-o", full)
    assert result.exit_code == 6
    assert result.output == f"Error: cannot write {full}: No space left on device\n"
    assert stat.S_ISCHR(full.stat().st_mode) and full.stat().st_rdev == FULL
    assert sorted(p.name for p in folder.iterdir()) == ["full"]


def test_a_block_device_is_refused(tiny_exported, corpus, tmp_path):
    block = device_node(tmp_path, "disk", os.makedev(7, 0), stat.S_IFBLK)
    result = run(tiny_exported, corpus, "-o", block)
    assert result.exit_code == 1 and "is a block device" in result.output
    assert stat.S_ISBLK(block.stat().st_mode)


def test_resume_and_parquet_to_a_stream_are_refused_in_one_line(tiny_exported, corpus, tmp_path):
    null = device_node(tmp_path, "null", NULL)
    resumed = run(tiny_exported, "--resume", corpus, "-o", null)
    assert resumed.exit_code == 1 and "--resume needs -o OUTPUT naming a file" in resumed.output
    parquet = run(tiny_exported, "--output-format", "parquet", corpus, "-o", null)
    assert parquet.exit_code == 1 and "a Parquet file is not written to a stream" in parquet.output
    for result in (resumed, parquet):
        assert result.output.count("\n") == 1
    assert stat.S_ISCHR(null.stat().st_mode)


def test_a_fifo_is_written_to_its_reader(tiny_exported, corpus, tmp_path, reference):
    fifo = tmp_path / "scores.fifo"
    os.mkfifo(fifo)
    received = tmp_path / "received.tsv"
    with open(received, "wb") as sink:
        reader = subprocess.Popen(["cat", str(fifo)], stdout=sink)
        done = subprocess.run([*SCORE, "--model", str(tiny_exported), "--quiet", str(corpus), "-o", str(fifo)],
                              capture_output=True, text=True, timeout=120)
        reader.wait(timeout=30)
    assert done.returncode == 0, done.stderr
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert received.read_bytes() == reference
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_socket_is_written_to_its_listener(tiny_exported, corpus, tmp_path, reference):
    path = tmp_path / "scores.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    received = bytearray()

    def accept():
        connection, _ = listener.accept()
        with connection:
            while data := connection.recv(65536):
                received.extend(data)

    thread = threading.Thread(target=accept)
    thread.start()
    result = run(tiny_exported, corpus, "-o", path)
    thread.join(timeout=30)
    listener.close()
    assert result.exit_code == 0, result.output
    assert bytes(received) == reference and stat.S_ISSOCK(path.stat().st_mode)


@pytest.mark.parametrize("name", ["/proc/self/fd/1", "through a link"])
def test_a_descriptor_path_writes_to_the_redirected_file_and_replaces_no_link(tiny_exported, corpus, tmp_path,
                                                                            reference, name):
    redirected = tmp_path / "redirected.tsv"
    output = name
    if name == "through a link":  # a link of our own to /dev/stdout: only the link's name is ours
        link = tmp_path / "out.tsv"
        link.symlink_to("/dev/stdout")
        output = str(link)
    with open(redirected, "wb") as handle:
        inode = os.fstat(handle.fileno()).st_ino
        done = subprocess.run([*SCORE, "--model", str(tiny_exported), "--quiet", str(corpus), "-o", output],
                              stdout=handle, stderr=subprocess.PIPE, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert redirected.read_bytes() == reference and redirected.stat().st_ino == inode
    if name == "through a link":
        assert link.is_symlink() and os.readlink(link) == "/dev/stdout"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in", "reference", "redirected.tsv"]
                                                                 + (["out.tsv"] if name != "/proc/self/fd/1" else []))


@pytest.mark.parametrize("path, descriptor", [("/dev/stdout", 1), ("/dev/stderr", 2), ("/dev/fd/5", 5),
                                              ("/proc/self/fd/7", 7), (f"/proc/{os.getpid()}/fd/3", 3)])
def test_descriptor_paths_are_recognised_by_name_before_anything_is_opened(path, descriptor):
    found = destination(path, "-o")
    assert found.is_stream and found.descriptor == descriptor and found.path is None


def test_a_link_to_a_file_replaces_the_file_and_keeps_the_link(tiny_exported, corpus, tmp_path, reference):
    folder = tmp_path / "results"
    folder.mkdir()
    target = folder / "scores.tsv"
    target.write_text("last night's scores\n")
    link = tmp_path / "latest.tsv"
    link.symlink_to(target)
    result = run(tiny_exported, "--on-bad-row", "skip", corpus, "-o", link)
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and link.resolve() == target
    assert target.read_bytes() == reference
    assert sorted(p.name for p in folder.iterdir()) == ["scores.tsv", "scores.tsv.meta.json", "scores.tsv.rejects.tsv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "latest.tsv", "reference", "results"]


def test_a_dangling_link_makes_the_file_it_points_to(tiny_exported, corpus, tmp_path, reference):
    link = tmp_path / "latest.tsv"
    link.symlink_to(tmp_path / "made.tsv")
    assert run(tiny_exported, corpus, "-o", link).exit_code == 0
    assert link.is_symlink() and (tmp_path / "made.tsv").read_bytes() == reference


@pytest.mark.parametrize("how", ["same path", "a link to the input", "a link as the output", "rejects",
                                 "rejects is the output", "standard input"])
def test_an_output_over_an_input_is_refused_before_anything_is_read(tiny_exported, corpus, tmp_path, how):
    before = corpus.read_bytes()
    link = tmp_path / "link.tsv"
    args, stdin = [corpus, "-o", corpus], None
    if how == "a link to the input":
        link.symlink_to(corpus)
        args = [link, "-o", corpus]
    elif how == "a link as the output":
        link.symlink_to(corpus)
        args = [corpus, "-o", link]
    elif how == "rejects":
        args = ["--on-bad-row", "skip", "--rejects", corpus, corpus, "-o", tmp_path / "out.tsv"]
    elif how == "rejects is the output":
        args = ["--on-bad-row", "skip", "--rejects", tmp_path / "out.tsv", corpus, "-o", tmp_path / "out.tsv"]
    elif how == "standard input":
        args = ["-", "-o", corpus]
    if how == "standard input":  # the shell's `score - -o c.tsv < c.tsv`: a real descriptor 0
        with open(corpus, "rb") as handle:
            done = subprocess.run([*SCORE, "--model", str(tiny_exported), *map(str, args)], stdin=handle,
                                  capture_output=True, text=True, timeout=120)
        code, output = done.returncode, done.stderr
    else:
        result = run(tiny_exported, *args, input=stdin)
        code, output = result.exit_code, result.output
    assert code == 2 and output.startswith("Error: ") and output.count("\n") == 1, output
    assert "would destroy the input" in output or "write the rejects elsewhere" in output
    assert corpus.read_bytes() == before
    assert not (tmp_path / "out.tsv").exists() and not list(corpus.parent.glob(".*"))


def test_standard_output_appending_to_the_input_is_refused(tiny_exported, corpus):
    before = corpus.read_bytes()
    with open(corpus, "ab") as appended:  # the shell's `score c.tsv >> c.tsv`
        done = subprocess.run([*SCORE, "--model", str(tiny_exported), str(corpus)], stdout=appended,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    assert done.returncode == 2 and "standard output is the input" in done.stderr
    assert corpus.read_bytes() == before


def test_the_refusal_is_decided_in_one_place_for_every_engine(corpus, tmp_path):
    options = ScoreOptions(on_bad_row="skip")
    with pytest.raises(UsageError, match="would destroy the input"):
        output_target(str(corpus), [str(corpus)], options)
    folder = corpus.parent  # a directory input (--engine ray reads its files): the output may not lie inside
    with pytest.raises(UsageError, match="inside the input directory"):
        output_target(str(folder / "scores.tsv"), [str(folder)], options)
    target = output_target(str(tmp_path / "out.tsv"), [str(corpus)], options)
    assert target.file == tmp_path / "out.tsv" and target.rejects_file == tmp_path / "out.tsv.rejects.tsv"


def test_a_message_quotes_at_most_200_characters_of_a_value(tiny_exported, tmp_path):
    long_line = tmp_path / "long.tsv"
    long_line.write_text("x" * 1_000_000 + "\n")
    result = run(tiny_exported, long_line)
    assert result.exit_code == 3
    assert len(result.output) < 1000 and "x" * 200 + "… (1,000,000 characters)" in result.output
    assert "x" * 201 not in result.output

    stance = tmp_path / "stance.tsv"
    value = "p" * 500_000
    stance.write_text(f"{HEADER}\nA1\tc\t{value}\tp\nA2\tc\tagainst\tp\n")
    result = run(tiny_exported, stance)
    assert result.exit_code == 3 and len(result.output) < 1000
    assert "p" * 200 + "… (500,000 characters)" in result.output


def test_the_rejects_file_keeps_a_long_row_whole(tiny_exported, tmp_path):
    source = tmp_path / "in.tsv"
    value = "p" * 300_000
    good = (EXAMPLES / "arguments.tsv").read_text().splitlines()[1]
    source.write_text(f"{HEADER}\n{good}\nA1\tc\t{value}\tp\n")
    result = run(tiny_exported, "--on-bad-row", "skip", source, "-o", tmp_path / "out.tsv")
    assert result.exit_code == 0 and len(result.output) < 2000
    rejected = (tmp_path / "out.tsv.rejects.tsv").read_text().splitlines()[1].split("\t")
    assert rejected[4:] == ["A1\\tc\\t" + value + "\\tp"]


@pytest.mark.parametrize("to_file", [True, False])
def test_a_run_that_rejects_every_row_exits_3_and_publishes_nothing(tiny_exported, tmp_path, to_file):
    source = tmp_path / "in.tsv"
    source.write_text(f"{HEADER}\nA1\tc\tsideways\tp\nA2\tc\tsideways\tp\n")
    out = tmp_path / "out.tsv"
    args = ["--on-bad-row", "skip", "--max-bad-rows", "100%", source] + (["-o", out] if to_file else [])
    result = CliRunner().invoke(score, ["--model", str(tiny_exported), "--quiet", *map(str, args)])
    assert result.exit_code == 3
    assert result.stdout == "" and "every row was rejected (2 bad row(s))" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tsv"]


def test_a_header_only_input_is_still_a_header_only_success(tiny_exported, tmp_path):
    source = tmp_path / "in.tsv"
    source.write_text(HEADER + "\n")
    result = run(tiny_exported, "--on-bad-row", "skip", source, "-o", tmp_path / "out.tsv")
    assert result.exit_code == 0
    assert (tmp_path / "out.tsv").read_text().startswith("Argument ID\t")


def test_nothing_scored_is_raised_by_the_writer_every_engine_shares(tiny_exported, tmp_path):
    source = tmp_path / "in.tsv"
    source.write_text(f"{HEADER}\nA1\tc\tsideways\tp\n")
    with pytest.raises(NothingScored):
        score_files([str(source)], str(tmp_path / "out.tsv"),
                    ScoreOptions(model_dir=str(tiny_exported), on_bad_row="skip"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tsv"]


def test_rejects_sent_to_a_device_leave_it_a_device_and_the_sidecar_names_it(tiny_exported, tmp_path):
    import json

    null = device_node(tmp_path, "null", NULL)
    source = tmp_path / "in.tsv"
    good = (EXAMPLES / "arguments.tsv").read_text().splitlines()[1]
    source.write_text(f"{HEADER}\n{good}\nA1\tc\tsideways\tp\n")
    out = tmp_path / "out.tsv"
    result = run(tiny_exported, "--on-bad-row", "skip", "--rejects", null, source, "-o", out)
    assert result.exit_code == 0, result.output
    assert null.is_char_device() and null.stat().st_rdev == NULL
    assert json.loads((tmp_path / "out.tsv.meta.json").read_text())["rejects_file"] == str(null)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tsv", "null", "out.tsv", "out.tsv.meta.json"]
