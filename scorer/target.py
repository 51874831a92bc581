"""Where ``-o`` and ``--rejects`` point, decided once for both engines (:func:`output_target`).

Only a regular file (or a path where nothing stands yet) is written the atomic way: a partial
file beside it, a lock, a journal and a sidecar, then a rename over it. Renaming over anything
else destroys it: as root, ``-o /dev/null`` would replace the device with a regular file. So:

* a regular file, or nothing: a :class:`Destination` of kind ``file``; a symbolic link is followed,
  so the file it points to is replaced and the link stays a link (the lock, journal and sidecar
  sit beside that file);
* a character device (``/dev/null``, a terminal), a FIFO or a socket: kind ``stream``, opened and
  written in order like standard output, with nothing beside it;
* ``/dev/stdout``, ``/dev/stderr``, ``/dev/fd/N`` and ``/proc/self/fd/N`` (also reached through
  links): always a stream on that already-open descriptor, even where the shell redirected it to
  a regular file, whose link must never be replaced;
* a directory or a block device: refused.

No destination may be one of the inputs (the same file after links, standard input included), and
``--rejects`` may not be the output: refused before anything is read (:class:`~argvalues.errors.UsageError`).
"""

from __future__ import annotations

import os
import re
import socket
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from argvalues.errors import ArgvaluesError, OutputError, UsageError

#: Paths that name an open descriptor of this process; Linux resolves their links to whatever the
#: descriptor is open on, so they are matched by name before any link is followed.
_STANDARD_STREAMS = {"/dev/stdin": 0, "/dev/stdout": 1, "/dev/stderr": 2}
_DESCRIPTOR_PATH = re.compile(r"^/(?:dev/fd|proc/(?:self|thread-self|(\d+))/fd)/(\d+)$")
_MAX_LINKS = 40  # as the kernel's own limit on links followed in one path


@dataclass(frozen=True)
class Destination:
    """What one ``-o`` or ``--rejects`` path is: ``file`` (``path``: the regular file to replace,
    links followed) or ``stream`` (written in order: an open ``descriptor``, or the device, FIFO
    or socket at ``path``). ``given`` is the path as the user wrote it, for messages."""

    kind: str
    given: str
    path: Path | None = None
    descriptor: int | None = None

    @property
    def is_stream(self) -> bool:
        return self.kind == "stream"

    def identity(self) -> tuple[int, int] | None:
        """(device, inode) of what is there now, None where nothing is."""
        try:
            found = os.fstat(self.descriptor) if self.descriptor is not None else os.stat(self.path)
        except OSError:
            return None
        return found.st_dev, found.st_ino

    def open_stream(self) -> IO[bytes]:
        """A binary handle for a stream destination, opened without truncating or replacing anything
        (a FIFO waits here for its reader)."""
        try:
            if self.descriptor == 1:
                sys.stdout.flush()
                return open(os.dup(sys.stdout.fileno()), "wb")
            if self.descriptor is not None:
                return open(os.dup(self.descriptor), "wb")
            if stat.S_ISSOCK(os.stat(self.path).st_mode):
                connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                connection.connect(str(self.path))
                return connection.makefile("wb")
            return open(os.open(self.path, os.O_WRONLY | os.O_NOCTTY), "wb")
        except OSError as error:
            raise OutputError(f"cannot write {self.given}: {error.strerror or error}") from None

    def __str__(self) -> str:
        return str(self.path) if self.kind == "file" else self.given


def _descriptor_named(path: str) -> int | None:
    """The descriptor number ``path`` names (/dev/stdout, /dev/fd/3, /proc/self/fd/3), checked at
    every link on the way, else None."""
    current = os.path.abspath(path)
    for _ in range(_MAX_LINKS):
        parent = os.path.realpath(os.path.dirname(current))
        for name in (current, os.path.join(parent, os.path.basename(current))):
            if name in _STANDARD_STREAMS:
                return _STANDARD_STREAMS[name]
            match = _DESCRIPTOR_PATH.match(name)
            if match and (match.group(1) is None or int(match.group(1)) == os.getpid()):
                return int(match.group(2))
        if not os.path.islink(current):
            return None
        current = os.path.normpath(os.path.join(parent, os.readlink(current)))
    return None


def destination(given: str, option: str) -> Destination:
    """What the path ``given`` to ``option`` (-o, --rejects) is; a directory or a block device is refused."""
    descriptor = _descriptor_named(given)
    if descriptor is not None:
        return Destination("stream", given, descriptor=descriptor)
    try:
        mode = os.stat(given).st_mode
    except OSError:
        # Nothing there yet (a dangling link: the file it points to will be made), or a path that
        # cannot be reached: writing it fails later as an output error (exit 6), naming the file.
        mode = None
    if mode is not None and stat.S_ISDIR(mode):
        raise ArgvaluesError(f"{given}: is a directory; {option} takes a file path")
    if mode is not None and stat.S_ISBLK(mode):
        raise ArgvaluesError(f"{given}: is a block device; {option} takes a file path (or a character device, "
                             f"FIFO or socket, written as a stream)")
    if mode is not None and (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        return Destination("stream", given, path=Path(given))
    return Destination("file", given, path=Path(os.path.realpath(given)))


def as_destination(where: Destination | Path | str | None) -> Destination | None:
    """A :class:`Destination` as it is; a path as the regular file it names (callers that decided already)."""
    if where is None or isinstance(where, Destination):
        return where
    return Destination("file", str(where), path=Path(where))


STANDARD_OUTPUT = Destination("stream", "standard output", descriptor=1)


def _input_identities(inputs: list[str]) -> list[tuple[str, tuple[int, int]]]:
    """(name, (device, inode)) of each input that is a file here (standard input: what it reads)."""
    found = []
    for source in inputs:
        try:
            info = os.fstat(sys.stdin.fileno()) if source == "-" else os.stat(source)
        except (OSError, ValueError, AttributeError):
            continue  # a URI, or no standard input to look at
        if source != "-" and stat.S_ISDIR(info.st_mode):
            continue
        found.append(("standard input" if source == "-" else source, (info.st_dev, info.st_ino)))
    return found


def _refuse_over_inputs(where: Destination, option: str, inputs: list[str]) -> None:
    identity = where.identity()
    if where.is_stream and where.descriptor is None:
        return  # a device, FIFO or socket is never an input file
    for name, input_identity in _input_identities(inputs):
        if identity is not None and identity == input_identity:
            what = "standard output" if where is STANDARD_OUTPUT else f"{option} {where.given}"
            raise UsageError(f"{what} is the input {name}: writing it would destroy the input; write elsewhere")
    for source in inputs:  # a directory input (--engine ray): the output must not be among the files it reads
        if where.kind == "file" and source != "-" and "://" not in source and Path(source).is_dir():
            folder = os.path.realpath(source)
            if os.path.commonpath([folder, str(where.path)]) == folder:
                raise UsageError(f"{option} {where.given} lies inside the input directory {source}; write elsewhere")


@dataclass(frozen=True)
class OutputTarget:
    """Where a run's scores and rejects go: :attr:`scores` (standard output by default) and
    :attr:`rejects` (None: rejected rows are counted on stderr only)."""

    scores: Destination
    rejects: Destination | None

    @property
    def file(self) -> Path | None:
        """The regular file the scores replace when complete (None: a stream)."""
        return self.scores.path if self.scores.kind == "file" else None

    @property
    def rejects_file(self) -> Path | None:
        return self.rejects.path if self.rejects is not None and self.rejects.kind == "file" else None


def default_rejects_path(output: str) -> str:
    return f"{output}.rejects.tsv"


def output_target(output: str | None, inputs: list[str], options) -> OutputTarget:
    """Where ``-o`` (None or '-': standard output) and ``options.rejects`` point, after refusing what
    cannot be done with them (``options``: :class:`~scorer.options.ScoreOptions`). Reads no row."""
    scores = STANDARD_OUTPUT if output is None or output == "-" else destination(output, "-o")
    if scores.is_stream:
        named = "standard output" if scores is STANDARD_OUTPUT else f"-o {output}"
        if options.resume:
            raise ArgvaluesError(f"--resume needs -o OUTPUT naming a file: {named} is a stream (standard output, a "
                                 f"device, a FIFO, a socket), which cannot be resumed")
        if options.output_format == "parquet":
            raise ArgvaluesError(f"--output-format parquet needs -o OUTPUT naming a file: a Parquet file is not "
                                 f"written to a stream ({named})")
    if options.resume and "-" in inputs:
        raise ArgvaluesError("--resume needs input files: standard input cannot be read again")
    rejects = None
    if options.on_bad_row == "skip":  # rows are set aside only under skip
        if options.rejects:
            rejects = destination(options.rejects, "--rejects")
        elif not scores.is_stream:
            rejects = Destination("file", default_rejects_path(str(scores.path)),
                                  path=Path(default_rejects_path(str(scores.path))))
    if rejects is not None and rejects.kind == "file" and not scores.is_stream and rejects.path == scores.path:
        raise UsageError(f"--rejects {rejects.given} is the output -o {output}; write the rejects elsewhere")
    if rejects is not None and rejects.identity() is not None and rejects.identity() == scores.identity() \
            and not (rejects.is_stream and rejects.descriptor is None):
        raise UsageError(f"--rejects {rejects.given} is the output -o {output or '-'}; write the rejects elsewhere")
    _refuse_over_inputs(scores, "-o", inputs)
    if rejects is not None:
        _refuse_over_inputs(rejects, "--rejects", inputs)
    return OutputTarget(scores, rejects)
