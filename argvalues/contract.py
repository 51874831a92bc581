"""The ValueEval data contract: columns, the 20 labels in official order, the input template.

Everything that reads arguments or labels goes through this module, so training and scoring
agree on what a row is. It imports only pandas and the standard library (no torch).
"""

from __future__ import annotations

import csv
import string
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from argvalues.errors import DataError, shown, shown_names
from argvalues.rows import ArgumentRows, SeenIds

ID_COLUMN = "Argument ID"
CONCLUSION, STANCE, PREMISE = "Conclusion", "Stance", "Premise"
ARGUMENT_COLUMNS = [ID_COLUMN, CONCLUSION, STANCE, PREMISE]
STANCES = ("in favor of", "against")
#: How people write a stance, each as it reads once case, surrounding and repeated spaces are
#: ignored (:func:`argvalues.rows.spelling`): the model reads the official wording only.
STANCE_SPELLINGS = {"in favor of": "in favor of", "in favour of": "in favor of", "pro": "in favor of",
                    "for": "in favor of", "against": "against", "con": "against"}

#: The 20 value categories, in the column order of the official label files.
LABELS = [
    "Self-direction: thought",
    "Self-direction: action",
    "Stimulation",
    "Hedonism",
    "Achievement",
    "Power: dominance",
    "Power: resources",
    "Face",
    "Security: personal",
    "Security: societal",
    "Tradition",
    "Conformity: rules",
    "Conformity: interpersonal",
    "Humility",
    "Benevolence: caring",
    "Benevolence: dependability",
    "Universalism: concern",
    "Universalism: nature",
    "Universalism: tolerance",
    "Universalism: objectivity",
]

_READ_OPTIONS = dict(
    sep="\t",
    dtype=str,
    keep_default_na=False,
    quoting=csv.QUOTE_NONE,
    encoding="utf-8-sig",
    compression="infer",
)


@dataclass(frozen=True)
class InputTemplate:
    """How an argument becomes model input: a text and an optional second segment.

    Fields are Python format strings over the argument columns, e.g. ``"{Premise}"``.
    """

    text: str
    text_pair: str | None = None

    def fields(self) -> list[str]:
        parts = [self.text] + ([self.text_pair] if self.text_pair else [])
        names = [name for part in parts for _, name, _, _ in string.Formatter().parse(part) if name]
        unknown = sorted(set(names) - set(ARGUMENT_COLUMNS))
        if unknown:
            raise DataError(f"input template uses unknown fields {unknown}; allowed: {ARGUMENT_COLUMNS}")
        return list(dict.fromkeys(names))

    def render(self, arguments: pd.DataFrame) -> tuple[list[str], list[str] | None]:
        """Render every row (vectorised: this runs on millions of rows when scoring)."""
        first = _render_column(self.text, arguments)
        second = _render_column(self.text_pair, arguments) if self.text_pair else None
        return first, second

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> InputTemplate:
        template = cls(text=data["text"], text_pair=data.get("text_pair"))
        template.fields()
        return template


def _render_column(pattern: str, arguments: pd.DataFrame) -> list[str]:
    pieces: list = []
    for literal, name, _, _ in string.Formatter().parse(pattern):
        if literal:
            pieces.append(literal)
        if name:
            pieces.append(arguments[name].astype(str))
    result = pd.Series([""] * len(arguments), index=arguments.index, dtype=object)
    for piece in pieces:
        result = result + piece
    return result.tolist()


#: Named templates for ``--template``. The notebook paired Premise with Conclusion.
TEMPLATES = {
    "premise": InputTemplate("{Premise}"),
    "premise-conclusion": InputTemplate("{Premise}", "{Conclusion}"),
    "premise-stance-conclusion": InputTemplate("{Premise}", "{Stance} {Conclusion}"),
}
DEFAULT_TEMPLATE = "premise-stance-conclusion"


def _check_columns(found: list[str], required: list[str], path: str) -> None:
    missing = [c for c in required if c not in found]
    if missing:
        raise DataError(
            f"{path}: line 1: missing column(s) {missing}; expected the columns {required} "
            f"but found {shown_names(found)}"
        )


def _parser_error(path: str, error: Exception) -> DataError:
    return DataError(f"{path}: {str(error).strip().splitlines()[0]}")


def argument_rows(source: str | Path | IO[bytes], required: list[str] | None = None, on_bad_row: str = "fail",
                  seen: SeenIds | None = None, **reading) -> ArgumentRows:
    """A row reader that applies the contract's row rules: non-empty ID, Premise and Conclusion,
    a Stance of 'in favor of' or 'against' (as people write them: :data:`STANCE_SPELLINGS`),
    unique IDs (across inputs sharing ``seen``). Only the ``required`` columns are checked and
    kept; extra columns are ignored. ``reading`` goes to :class:`ArgumentRows`: ``columns``
    (field -> the input's column name), ``keep``, ``file_format``, ``row_ids``, ``one_line``,
    ``log``, ``field_names``."""
    return ArgumentRows(source, required or ARGUMENT_COLUMNS, on_bad_row=on_bad_row, seen=seen, id_column=ID_COLUMN,
                        nonempty=(CONCLUSION, PREMISE), spellings={STANCE: STANCE_SPELLINGS}, **reading)


def iter_argument_chunks(
    source: str | Path | IO[bytes], required: list[str] | None = None, chunk_rows: int = 10_000
) -> Iterator[pd.DataFrame]:
    """Yield the arguments of a TSV (plain, .gz, or '-' for stdin) in chunks of ``chunk_rows``.

    Memory stays flat however large the file. ``required`` defaults to all argument columns.
    Any bad row raises :class:`DataError` naming the file, line and column.
    """
    for chunk in argument_rows(source, required).chunks(chunk_rows):
        yield chunk.frame


def read_arguments(source: str | Path | IO[bytes], required: list[str] | None = None) -> pd.DataFrame:
    """Read a whole arguments TSV (every row checked; IDs unique)."""
    chunks = list(iter_argument_chunks(source, required))
    return pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame(columns=required or ARGUMENT_COLUMNS)


def _check_unique_ids(frame: pd.DataFrame, name: str) -> None:
    duplicated = frame[ID_COLUMN].duplicated()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated.to_numpy())[0])
        raise DataError(f"{name}: line {row + 2}: duplicate {ID_COLUMN} '{shown(frame[ID_COLUMN].iloc[row])}'")


def _read_label_table(path: str | Path) -> pd.DataFrame:
    """A whole TSV of ``Argument ID`` and label columns, as strings (labels and predictions files)."""
    name = str(path)
    if not Path(path).is_file():
        raise DataError(f"{name}: no such file")
    try:
        return pd.read_csv(path, **_READ_OPTIONS)
    except pd.errors.EmptyDataError:
        raise DataError(f"{name}: the file is empty; expected a header with {[ID_COLUMN] + LABELS}") from None
    except (pd.errors.ParserError, UnicodeDecodeError, EOFError, OSError) as error:
        raise _parser_error(name, error) from None


def read_labels(path: str | Path) -> pd.DataFrame:
    """Read a labels TSV: ``Argument ID`` plus the 20 label columns, each 0 or 1."""
    name = str(path)
    frame = _read_label_table(path)
    columns = list(frame.columns)
    unknown = [c for c in columns if c != ID_COLUMN and c not in LABELS]
    if unknown:
        raise DataError(f"{name}: line 1: unknown label column(s) {shown_names(unknown)}; the labels are {LABELS}")
    _check_columns(columns, [ID_COLUMN] + LABELS, name)
    values = frame[LABELS]
    bad = ~values.isin(["0", "1"])
    if bad.to_numpy().any():
        row, col = (int(i[0]) for i in np.nonzero(bad.to_numpy()))
        raise DataError(
            f"{name}: line {row + 2}: column '{LABELS[col]}' has value '{shown(values.iat[row, col])}'; expected 0 or 1"
        )
    _check_unique_ids(frame, name)
    labels = values.astype(np.int8)
    labels.insert(0, ID_COLUMN, frame[ID_COLUMN])
    return labels


def read_labelled_arguments(arguments_path: str | Path, labels_path: str | Path) -> tuple[pd.DataFrame, np.ndarray]:
    """Read arguments and their labels, aligned row by row (order of the arguments file)."""
    arguments = read_arguments(arguments_path)
    labels = read_labels(labels_path).set_index(ID_COLUMN)
    missing = ~arguments[ID_COLUMN].isin(labels.index)
    if missing.any():
        row = int(np.flatnonzero(missing.to_numpy())[0])
        raise DataError(
            f"{arguments_path}: line {row + 2}: {ID_COLUMN} '{arguments[ID_COLUMN].iloc[row]}' has no labels "
            f"in {labels_path} ({int(missing.sum())} argument(s) without labels)"
        )
    targets = labels.loc[arguments[ID_COLUMN], LABELS].to_numpy(dtype=np.float32)
    return arguments, targets


def read_predictions(path: str | Path) -> pd.DataFrame:
    """Read a predictions TSV (``Argument ID`` + the 20 labels, 0/1 or probabilities) as floats."""
    name = str(path)
    frame = _read_label_table(path)
    _check_columns(list(frame.columns), [ID_COLUMN] + LABELS, name)
    values = frame[LABELS].apply(pd.to_numeric, errors="coerce")
    bad = values.isna() | (values < 0) | (values > 1)
    if bad.to_numpy().any():
        row, col = (int(i[0]) for i in np.nonzero(bad.to_numpy()))
        raise DataError(
            f"{name}: line {row + 2}: column '{LABELS[col]}' has value '{frame[LABELS].iat[row, col]}'; "
            f"expected 0, 1 or a probability"
        )
    _check_unique_ids(frame, name)
    values.insert(0, ID_COLUMN, frame[ID_COLUMN])
    return values
