"""Exceptions raised inside argvalues; the CLI turns them into one-line messages."""


class ArgvaluesError(Exception):
    """Base class: a problem the user can fix (bad input, missing file, bad option)."""

    exit_code = 1
    keeps_progress = False  # True: a run's partial output stays for --resume (else it is discarded)


class UsageError(ArgvaluesError):
    """Options that cannot be carried out as given (an output that is one of the inputs)."""

    exit_code = 2


class DataError(ArgvaluesError):
    """An input TSV does not follow the ValueEval contract."""

    exit_code = 3


class ModelDirError(ArgvaluesError):
    """A model directory or checkpoint is missing something or is inconsistent."""

    exit_code = 4


class ExportParityError(ArgvaluesError):
    """The exported ONNX model disagrees with the PyTorch model beyond tolerance."""

    exit_code = 5


class OutputError(ArgvaluesError):
    """The output cannot be written (disk full, file size limit, permissions)."""

    exit_code = 6


class ResumeError(ArgvaluesError):
    """``--resume`` was refused: the journal does not match this run."""

    exit_code = 7


class OutputBusy(ArgvaluesError):
    """Another run is writing the same output (``-o``) right now."""

    exit_code = 8


class TooManyBadRows(DataError):
    """More rows were rejected than ``--max-bad-rows`` allows."""


class NothingScored(DataError):
    """Every row of a run was rejected: nothing was scored, so nothing is published."""


class Interrupted(ArgvaluesError):
    """Ctrl-C (SIGINT) during a run."""

    exit_code = 130
    keeps_progress = True


class Terminated(Interrupted):
    """SIGTERM during a run (a scheduler's timeout, a shutdown)."""

    exit_code = 143


class TerminateSignal(KeyboardInterrupt):
    """Raised by the SIGTERM handler the commands install, so SIGTERM unwinds like Ctrl-C."""


class RunFailed(ArgvaluesError):
    """A run failed for a reason outside its input (e.g. a lost Ray cluster): its progress is kept,
    so ``--resume`` continues it."""

    keeps_progress = True


#: An error message quotes at most this many characters of a value read from an input.
QUOTED_CHARACTERS = 200
#: ... and names at most this many of an input's column names.
QUOTED_NAMES = 30


def shown(value: object) -> str:
    """A value read from an input, for a one-line message: its first :data:`QUOTED_CHARACTERS`
    characters, then "…" and its full length (a 1 MB line must not become a 1 MB message)."""
    text = str(value)
    if len(text) <= QUOTED_CHARACTERS:
        return text
    return f"{text[:QUOTED_CHARACTERS]}… ({len(text):,} characters)"


def shown_names(names: list) -> str:
    """Column names read from an input, as a list in a message, each :func:`shown`, at most
    :data:`QUOTED_NAMES` of them."""
    items = [repr(shown(name)) for name in names[:QUOTED_NAMES]]
    if len(names) > QUOTED_NAMES:
        items.append(f"… ({len(names):,} columns)")
    return "[" + ", ".join(items) + "]"
