"""``argvalues summarize``: what a scored corpus says, per value, overall and per group.

It reads a ``score`` output in any of its formats as a stream (only counts are kept), finds the
model through the output's sidecar (or ``--model``), and for each value (the 20 categories and the
4 higher-order values) reports the rows, the labelled share, the prevalence corrected for the
model's recorded error rates (:mod:`argvalues.prevalence`) and its 95% interval; between the groups
of a ``--by`` column, the differences with their intervals. Where the correction does not apply
(scores made with ``--threshold``, rows read in windows, a model or reading without recorded
rates) it reports the shares alone and says why.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from argvalues.contract import ID_COLUMN, LABELS
from argvalues.error_rates import read_error_rates, rolled_up
from argvalues.errors import ArgvaluesError, DataError
from argvalues.formats import input_format, open_reader
from argvalues.model_config import ARGUMENTS, TEXT, ScoringConfig
from argvalues.prevalence import ADJUSTED, CORRECTED, SCALED, SHARE, GroupCounts, correction_draws, difference, estimate, method_of
from argvalues.values import HIGHER_ORDER

ALL = "all"
VALUES = [*LABELS, *HIGHER_ORDER]
SUMMARY_COLUMNS = ["by", "group", "value", "kind", "n", "share", "prevalence", "ci_low", "ci_high", "method"]
DIFFERENCE_COLUMNS = ["by", "group", "other", "value", "kind", "difference", "ci_low", "ci_high", "method"]
#: Rows read in windows, as a share of the rows, up to which the correction still applies: the
#: rates were measured on rows that fit one window, and a few long rows move a share little.
MAX_WINDOWED_SHARE = 0.01
#: Groups the printed table shows (overall first); summary.csv holds them all.
MAX_GROUPS_SHOWN = 6
#: Pairs of groups compared per --by column, at most (all pairs of up to this many groups).
MAX_GROUPS_COMPARED = 6


@dataclass
class ScoresSource:
    """What the summary needs to know of the scores: the model, its thresholds and rates, the
    reading, and why the correction does not apply (None: it does)."""

    model_dir: Path | None
    thresholds: np.ndarray | None
    rates: dict | None
    reading: str
    not_adjusted: str | None
    notes: list[str] = field(default_factory=list)


def describe_source(scores: str | None, sidecar: dict | None, model: str | None, reading: str | None) -> ScoresSource:
    """The model and rates behind ``scores`` (its sidecar: what ``score`` recorded), or ``model``."""
    options = (sidecar or {}).get("options", {})
    recorded = (sidecar or {}).get("model", {}).get("directory")
    model_dir = Path(model) if model else (Path(recorded) if recorded else None)
    reading = reading or (TEXT if options.get("text_column") else ARGUMENTS)
    if model_dir is None or not (model_dir / "argvalues.json").is_file():
        where = f"the sidecar names {recorded}, not here" if recorded else "no sidecar names it"
        return ScoresSource(None, None, None, reading, f"the model is not known ({where}); pass --model")
    config = ScoringConfig.load(model_dir)
    thresholds = np.asarray(config.thresholds_for(reading), dtype=np.float32)
    found = read_error_rates(model_dir)
    rates = (found or {}).get("readings", {}).get(reading)
    reason = None
    notes = [] if sidecar is not None else [
        f"{scores} has no sidecar ({scores}.meta.json): taken as scored by {model_dir} at its own thresholds"]
    if options.get("threshold") is not None:
        reason = (f"the scores were made with --threshold {options['threshold']}, not at the thresholds the model's "
                  "error rates were measured at")
    elif windowed_share(sidecar) > MAX_WINDOWED_SHARE:
        reason = (f"{sidecar['long_texts']['rows_longer']} of {sidecar['rows']['scored']} rows were longer than the "
                  "model's max length and read in windows, which the error rates were not measured on")
    elif found is None:
        reason = f"{model_dir} records no error rates (exported before they were: export it again)"
    elif rates is None:
        reason = f"{model_dir} records no error rates for reading {'texts alone' if reading == TEXT else 'arguments'}"
    if reason is None and windowed_share(sidecar) > 0:
        notes.append(f"{sidecar['long_texts']['rows_longer']} rows were read in windows (at most "
                     f"{100 * MAX_WINDOWED_SHARE:g}% of the rows may be): corrected with the rates of single windows")
    return ScoresSource(model_dir, thresholds, rates, reading, reason, notes)


def windowed_share(sidecar: dict | None) -> float:
    """The share of the scored rows read in windows (long rows under --long-text windows)."""
    if not sidecar or (sidecar.get("options") or {}).get("long_text", "windows") != "windows":
        return 0.0
    longer = (sidecar.get("long_texts") or {}).get("rows_longer") or 0
    return longer / max(1, (sidecar.get("rows") or {}).get("scored") or 0)


def read_sidecar(scores: str) -> dict | None:
    path = Path(f"{scores}.meta.json")
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise DataError(f"{path}: not a readable sidecar (JSON)") from None


def count_groups(chunks, by: list[str], thresholds: np.ndarray | None) -> dict[tuple[str, str], GroupCounts]:
    """Counts of every value's labels, overall (``('', 'all')``) and per (column, group), from frames
    of the score columns (0/1, or probabilities thresholded at ``thresholds``)."""
    groups: dict[tuple[str, str], GroupCounts] = {}
    for frame in chunks:
        values = frame[LABELS].to_numpy(dtype=np.float32)
        if not np.isin(values, (0.0, 1.0)).all():
            if thresholds is None:
                raise ArgvaluesError("the scores are probabilities and the model (its thresholds) is not known; "
                                     "pass --model")
            values = values >= thresholds
        labels = np.concatenate([values.astype(bool), rolled_up(values)], axis=1)
        groups.setdefault(("", ALL), GroupCounts()).add(labels)
        for column in by:
            keys = frame[column].astype(str).to_numpy()
            for key in dict.fromkeys(keys):
                groups.setdefault((column, key), GroupCounts()).add(labels[keys == key])
    return groups


def summarize_counts(groups: dict[tuple[str, str], GroupCounts], source: ScoresSource,
                     seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The summary and the differences between groups of each --by column."""
    rng = np.random.default_rng(seed)
    rates = source.rates if source.not_adjusted is None else None
    entries = {**(rates or {}).get("categories", {}), **(rates or {}).get("higher_order", {})}
    shared = {value: correction_draws(entries[value], rng) for value in VALUES if method_of(entries.get(value)) != SHARE}
    rows, estimates = [], {}
    for (column, group), counts in groups.items():
        for index, value in enumerate(VALUES):
            found = estimate(int(counts.counts[index]), counts.rows, entries.get(value), shared.get(value), rng)
            estimates[column, group, value] = found
            rows.append([column, group, value, "category" if value in LABELS else "higher-order", counts.rows,
                         found.share, found.prevalence, found.low, found.high, found.method])
    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    differences = []
    for column in dict.fromkeys(c for c, _ in groups if c):
        names = [g for c, g in groups if c == column]
        if len(names) > MAX_GROUPS_COMPARED:
            source.notes.append(f"--by {column}: {len(names)} groups; differences are given for up to "
                                f"{MAX_GROUPS_COMPARED}")
            continue
        for first, second in combinations(names, 2):
            for value in VALUES:
                a, b = estimates[column, first, value], estimates[column, second, value]
                change, low, high = difference(a, b)
                differences.append([column, first, second, value, "category" if value in LABELS else "higher-order",
                                    change, low, high, a.method])
    return summary, pd.DataFrame(differences, columns=DIFFERENCE_COLUMNS)


def score_frames(scores: str, by: list[str], chunk_rows: int = 8192):
    """The scores file's ID, --by and label columns, in frames of ``chunk_rows`` rows (labels as text)."""
    reader = open_reader(scores, input_format(scores))
    try:
        header = reader.columns()
        if header is None:
            raise DataError(f"{scores}: the file is empty")
        missing = [c for c in [*LABELS, *by] if c not in header]
        if missing:
            hint = (" (carry it into the scores with score --keep-columns)" if any(c in by for c in missing) else "")
            raise DataError(f"{scores}: no column(s) {missing}{hint}; is it a score output?")
        wanted = [*by, *LABELS]
        rows = []
        for line, values, _, reason, _ in reader.records(wanted):
            if values is None:
                raise DataError(f"{scores}: line {line}: {reason}")
            rows.append(values)
            if len(rows) == chunk_rows:
                yield _frame(rows, wanted, scores)
                rows = []
        if rows:
            yield _frame(rows, wanted, scores)
    finally:
        reader.close()


def _frame(rows: list[list[str]], wanted: list[str], scores: str) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=wanted)
    try:
        frame[LABELS] = frame[LABELS].astype(np.float32)
    except ValueError as error:
        raise DataError(f"{scores}: a label column holds something other than a number ({error})") from None
    return frame


def summarize_file(scores: str, by: list[str] = (), model: str | None = None, reading: str | None = None,
                   output: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame, ScoresSource]:
    """Summarize the score file ``scores`` (see the module doc); with ``output``, write
    ``summary.csv``, ``differences.csv`` (with --by) and, where matplotlib is installed, ``profile.png``."""
    if not Path(scores).is_file():
        raise DataError(f"{scores}: no such file")
    by = list(dict.fromkeys(by))
    if ID_COLUMN in by or any(b in LABELS for b in by):
        raise ArgvaluesError("--by takes a column the scores carry besides the ID and the labels "
                             "(score --keep-columns NAME carries one)")
    source = describe_source(scores, read_sidecar(scores), model, reading)
    groups = count_groups(score_frames(scores, by), by, source.thresholds)
    summary, differences = summarize_counts(groups, source)
    if output:
        write_summary(Path(output), summary, differences, source)
    return summary, differences, source


def write_summary(directory: Path, summary: pd.DataFrame, differences: pd.DataFrame, source: ScoresSource) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = [directory / "summary.csv"]
    summary.to_csv(written[0], index=False, float_format="%.4f", quoting=csv.QUOTE_MINIMAL)
    if len(differences):
        written.append(directory / "differences.csv")
        differences.to_csv(written[-1], index=False, float_format="%.4f")
    try:
        from scorer.profile_chart import draw_profiles
    except ImportError:
        source.notes.append("no chart: matplotlib is not installed (pip install 'argvalues[plots]')")
    else:
        written.append(draw_profiles(summary, directory / "profile.png"))
    return written


def render_summary(summary: pd.DataFrame, source: ScoresSource) -> str:
    """The summary as a table: a row per value, a column per group (prevalence and its interval, %)."""
    groups = list(dict.fromkeys(zip(summary["by"], summary["group"])))
    hidden = len(groups) - MAX_GROUPS_SHOWN
    groups = groups[:MAX_GROUPS_SHOWN]
    names = [g if not c else f"{c}={g}" for c, g in groups]
    width = max(len(v) for v in VALUES)
    cell = 22
    lines = [f"{'value':<{width}}  " + "".join(f"{name[:cell - 1]:>{cell}}" for name in names),
             f"{'rows':<{width}}  " + "".join(f"{int(summary[(summary['by'] == c) & (summary['group'] == g)]['n'].iat[0]):>{cell}}"
                                             for c, g in groups)]
    for value in VALUES:
        if value == VALUES[len(LABELS)]:
            lines.append("")
        cells = []
        for column, group in groups:
            row = summary[(summary["by"] == column) & (summary["group"] == group) & (summary["value"] == value)].iloc[0]
            mark = "" if row["method"] != SHARE else "*"
            cells.append(f"{100 * row['prevalence']:5.1f}{mark:1} ({100 * row['ci_low']:4.1f}-{100 * row['ci_high']:4.1f})")
        lines.append(f"{value:<{width}}  " + "".join(f"{c:>{cell}}" for c in cells))
    lines.append("")
    if source.not_adjusted:
        lines.append(f"Shares of rows labelled, not corrected for the model's errors: {source.not_adjusted}.")
    else:
        methods = set(summary["method"])
        how = {SCALED: "the share scaled by the model's ratio of true to labelled shares measured out of fold",
               CORRECTED: "the share minus the model's bias measured out of fold", ADJUSTED: "adjusted for the model's "
               "error rates measured out of fold (adjusted classify-and-count)"}
        named = "; ".join(how[m] for m in (SCALED, CORRECTED, ADJUSTED) if m in methods)
        lines.append(f"Prevalence in % with its 95% interval: {named}; the interval carries how much that "
                     "varied between sets of conclusions the model had not learnt." if named else
                     "Shares of rows labelled with 95% intervals: the model's recorded choice is the share.")
        if SHARE in methods and named:
            lines.append("* the labelled share, where the model records no correction for that value.")
    if hidden > 0:
        lines.append(f"{hidden} more group(s) are in summary.csv (-o DIR writes it).")
    lines += source.notes
    return "\n".join(lines)
