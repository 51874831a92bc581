"""The Python API, for notebooks: :class:`Scorer` and :func:`summarize`, on the same code paths as
``score`` and ``argvalues summarize`` (a frame goes through the scorer's own reader, checks and
writer, by way of a temporary Parquet file, and comes back as a frame).

    import argvalues

    scorer = argvalues.Scorer()                 # the packaged model
    scores = scorer.score(["Cheap buses let poor families reach work.", "Forests must be protected."])
    argvalues.summarize(scores)                 # each value's share and corrected prevalence
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from argvalues.contract import ID_COLUMN, PREMISE
from argvalues.model_config import ARGUMENTS, TEXT

TEXT_COLUMN = "text"


class Scorer:
    """A model directory, loaded once and scoring frames or lists of texts."""

    def __init__(self, model: str | Path | None = None, device: str = "auto", variant: str = "auto",
                 long_text: str = "windows", max_windows: int | None = None, window_tokens: int | None = None):
        """``model``: a model directory (None: as ``score`` finds one: ``$ARGVALUES_MODEL``,
        ``./argvalues-model``, else the packaged model)."""
        from scorer.options import ScoreOptions, default_model_dir
        from scorer.windows import DEFAULT_MAX_WINDOWS, DEFAULT_WINDOW_TOKENS

        self.model_dir = str(model) if model is not None else default_model_dir()
        self.device, self.variant = device, variant
        self.long_text, self.max_windows = long_text, max_windows or DEFAULT_MAX_WINDOWS
        self.window_tokens = window_tokens or DEFAULT_WINDOW_TOKENS
        ScoreOptions(model_dir=self.model_dir, long_text=self.long_text, max_windows=self.max_windows,
                     window_tokens=self.window_tokens)  # checks them
        self._models = {}

    def _model(self, reading: str):
        from scorer.model import ScoringModel

        if reading not in self._models:
            self._models[reading] = ScoringModel(self.model_dir, self.device, variant=self.variant, reading=reading,
                                                 long_text=self.long_text, max_windows=self.max_windows,
                                                 window_tokens=self.window_tokens)
        return self._models[reading]

    def score(self, data: pd.DataFrame | list[str], text_column: str | None = None, probabilities: bool = False,
              id_column: str | None = None, keep_columns: list[str] | tuple[str, ...] = ()) -> pd.DataFrame:
        """Score ``data`` and return a frame: the IDs (``Argument ID``; row numbers where ``data`` has
        no ID column and no ``id_column``), any ``keep_columns``, then the 20 values (0/1, or
        probabilities). A list of strings is taken as texts alone; a frame holds arguments
        (``Argument ID``, ``Conclusion``, ``Stance``, ``Premise``), or texts in ``text_column``.
        Bad rows raise :class:`~argvalues.errors.DataError`, as ``score`` stops at them."""
        from scorer.options import ScoreOptions
        from scorer.score import score_files

        if isinstance(data, (list, tuple)):
            if text_column is not None:
                raise ValueError("a list is scored as texts alone; text_column names a column of a frame")
            data, text_column = pd.DataFrame({TEXT_COLUMN: list(data)}), TEXT_COLUMN
        if not isinstance(data, pd.DataFrame):
            raise TypeError(f"data must be a pandas DataFrame or a list of strings, not {type(data).__name__}")
        reading = TEXT if text_column is not None else ARGUMENTS
        options = ScoreOptions(model_dir=self.model_dir, probabilities=probabilities, text_column=text_column,
                               id_column=id_column, keep_columns=list(keep_columns), output_format="parquet",
                               long_text=self.long_text, max_windows=self.max_windows,
                               window_tokens=self.window_tokens, variant=self.variant,
                               device=self.device)
        with tempfile.TemporaryDirectory(prefix="argvalues-") as folder:
            source, target = Path(folder) / "input.parquet", Path(folder) / "scores.parquet"
            data.astype(object).where(data.notna(), "").astype(str).to_parquet(source, index=False)
            stats = score_files([str(source)], str(target), options, model=self._model(reading))
            scores = pd.read_parquet(target)
        scores.attrs["argvalues"] = {"model": str(Path(self.model_dir).resolve()), "reading": reading,
                                     "threshold": None, "probabilities": probabilities,
                                     "rows": stats.rows, "long_texts": stats.long_texts()}
        return scores


def summarize(scores: pd.DataFrame, by: str | list[str] | None = None, model: str | Path | None = None) -> pd.DataFrame:
    """Each value's rows, labelled share and prevalence corrected for the model's error rates, with a
    95% interval, overall (group ``all``) and per group of each ``by`` column: ``argvalues
    summarize``'s ``summary.csv`` as a frame. ``scores``: what :meth:`Scorer.score` returned (it
    knows its model), or any ``score`` output read into a frame (then pass ``model``)."""
    from scorer.summarize import count_groups, describe_source, summarize_counts

    by = [by] if isinstance(by, str) else list(by or [])
    made = scores.attrs.get("argvalues", {})
    sidecar = None
    if made:
        sidecar = {"model": {"directory": made["model"]}, "options": {"text_column": TEXT_COLUMN if made["reading"] == TEXT
                                                                      else None, "threshold": made["threshold"]},
                   "long_texts": made["long_texts"], "rows": {"scored": made["rows"]}}
    source = describe_source("the scores", sidecar, str(model) if model else None, None)
    missing = [column for column in by if column not in scores.columns]
    if missing:
        raise ValueError(f"by: no column(s) {missing} in the scores (Scorer.score(keep_columns=...) carries them)")
    summary, _ = summarize_counts(count_groups([scores], by, source.thresholds), source)
    summary.attrs["argvalues"] = {"not_adjusted": source.not_adjusted, "notes": source.notes}
    return summary


__all__ = ["Scorer", "summarize", "ID_COLUMN", "PREMISE"]
