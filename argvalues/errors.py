"""Exceptions raised inside argvalues; the CLI turns them into one-line messages."""


class ArgvaluesError(Exception):
    """Base class: a problem the user can fix (bad input, missing file, bad option)."""

    exit_code = 1


class DataError(ArgvaluesError):
    """An input TSV does not follow the ValueEval contract."""

    exit_code = 3


class ModelDirError(ArgvaluesError):
    """A model directory or checkpoint is missing something or is inconsistent."""

    exit_code = 4


class ExportParityError(ArgvaluesError):
    """The exported ONNX model disagrees with the PyTorch model beyond tolerance."""

    exit_code = 5
