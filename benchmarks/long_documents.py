"""Long texts: documents joined from the premises of k validation arguments of one conclusion and
stance (gold: the union of their labels), scored in windows, cut at the max length, and with each
argument scored alone and the labels joined (the ceiling: what windows try to recover).

Each (conclusion, stance) group's arguments, in file order, are cut into documents of k
consecutive arguments (the rest left out); a document keeps its conclusion and stance, and its
premise is the k premises joined with spaces. Official F1 of each method, with 95% intervals
from a bootstrap over conclusions (documents of one conclusion share a topic, so they are resampled
together), and the share of the gap between truncation and "each alone" that windows close.
Windows are aggregated as ``score`` does (each value's largest probability over a row's windows);
the mean over windows is shown beside it. Speed: rows/s and windows/s of the windows run
(``ScoringModel.probabilities``, one process, after a warm-up pass).

    .venv/bin/python benchmarks/long_documents.py MODEL_DIR [--data ../shared/data/valueeval23] [--sizes 2 4 8]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tokenizers import Tokenizer

from argvalues.contract import CONCLUSION, ID_COLUMN, PREMISE, STANCE, read_labelled_arguments
from argvalues.metrics import apply_thresholds, official_scores
from export.judging import _f1_of_counts
from scorer.model import Prepared, ScoringModel
from scorer.windows import Encoded

RESAMPLES = 2000


def documents(arguments: pd.DataFrame, labels: np.ndarray, size: int) -> tuple[pd.DataFrame, np.ndarray, list]:
    """Documents of ``size`` arguments each: the frame (ID, Conclusion, Stance, Premise), their
    gold labels (the union) and each document's member rows."""
    rows, gold, members = [], [], []
    for (conclusion, stance), group in arguments.groupby([CONCLUSION, STANCE], sort=False):
        positions = group.index.to_numpy()
        for start in range(0, len(positions) - size + 1, size):
            chosen = positions[start:start + size]
            rows.append([f"D{len(rows):04d}", conclusion, stance, " ".join(arguments.loc[chosen, PREMISE])])
            gold.append(labels[chosen].max(axis=0))
            members.append(chosen)
    return pd.DataFrame(rows, columns=[ID_COLUMN, CONCLUSION, STANCE, PREMISE]), np.array(gold), members


def window_probabilities(model: ScoringModel, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each window's probabilities on its own, and each row's window count."""
    prepared = model.prepare(frame)
    count = int(prepared.windows_per_row.sum())
    single = Encoded([None] * count, np.ones(count, dtype=np.int64), np.zeros(count, bool), np.zeros(count, bool))
    return model.infer(Prepared(prepared.batches, single)), prepared.windows_per_row


def by_row(windows: np.ndarray, counts: np.ndarray, reduce) -> np.ndarray:
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return np.stack([reduce(windows[start:start + n], axis=0) for start, n in zip(starts, counts)])


def cluster_bootstrap(gold: np.ndarray, predictions: dict[str, np.ndarray], clusters: np.ndarray,
                      seed: int = 0) -> dict[str, np.ndarray]:
    """Official F1 of each method on ``RESAMPLES`` resamples of the clusters (with replacement)."""
    names = np.unique(clusters)
    index = np.searchsorted(names, clusters)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(names), size=(RESAMPLES, len(names)))
    weights = np.zeros((RESAMPLES, len(clusters)))
    for r in range(RESAMPLES):  # each drawn cluster counts its documents once per draw
        picked = np.bincount(draws[r], minlength=len(names))
        weights[r] = picked[index]
    truth = gold.astype(bool)
    relevant = weights @ truth
    return {name: _f1_of_counts(weights @ (truth & labels), weights @ labels, relevant)
            for name, labels in predictions.items()}


def pieces_of(args) -> list[tuple[pd.DataFrame, np.ndarray, Path]]:
    """(arguments, labels, model) to build documents from: the validation set and the model given,
    or, with ``--run``, each fold's held-out training arguments and that fold's own model (exported
    into ``--fold-models``/fold-K): a comparison that needs no validation label."""
    if args.run is None:
        arguments, labels = read_labelled_arguments(args.data / "arguments-validation.tsv",
                                                    args.data / "labels-validation.tsv")
        return [(arguments.reset_index(drop=True), labels.astype(bool), args.model_dir)]
    from trainer.run_dir import RunDir
    from trainer.training_data import read_training_pairs

    run = RunDir(args.run)
    arguments, labels = read_training_pairs(run.config().arguments, run.config().labels)
    folds = arguments[ID_COLUMN].map(run.read_out_of_fold()["fold"]).to_numpy()
    return [(arguments[folds == fold].reset_index(drop=True), labels[folds == fold].astype(bool),
             args.fold_models / f"fold-{int(fold)}") for fold in np.unique(folds[~pd.isna(folds)])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path, nargs="?", help="the model (without --run)")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/valueeval23"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--variant", default="fp32")
    parser.add_argument("--window-tokens", type=int, nargs="+", default=[None],
                        help="window lengths to compare (default: the scorer's)")
    parser.add_argument("--run", type=Path, default=None,
                        help="documents from each fold's held-out arguments of this run, scored by that fold's model")
    parser.add_argument("--fold-models", type=Path, default=None, help="with --run: fold-K model directories")
    args = parser.parse_args()
    flags = sorted({f for line in open("/proc/cpuinfo") if line.startswith("flags") for f in line.split()[2:]}
                   & {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16"})
    print(f"CPU: {platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} cores, flags {' '.join(flags)}")
    pieces = pieces_of(args)
    print(f"{'fold models of ' + str(args.run) if args.run else args.model_dir} ({args.variant}); "
          f"{RESAMPLES} resamples of the conclusions\n")
    print("| arguments per document | documents (conclusions) | tokens per document, median | window tokens | "
          "windows per document, mean | truncation | windows (max) | windows (mean) | each alone, joined | "
          "gap closed by windows | rows/s | windows/s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for size in args.sizes:
        parts = []
        for arguments, labels, model_dir in pieces:
            truncate_model = ScoringModel(model_dir, device="cpu", variant=args.variant, long_text="truncate")
            thresholds = truncate_model.thresholds
            frame, gold, members = documents(arguments, labels, size)
            alone = truncate_model.probabilities(arguments)
            parts.append((model_dir, frame, gold, thresholds, apply_thresholds(truncate_model.probabilities(frame), thresholds),
                          np.stack([apply_thresholds(alone[m], thresholds).max(axis=0) for m in members])))
        frame = pd.concat([p[1] for p in parts], ignore_index=True)
        gold = np.concatenate([p[2] for p in parts])
        counting = Tokenizer.from_file(str(parts[0][0] / "tokenizer.json"))  # no truncation: a document's own length
        counting.no_truncation()
        tokens = [len(e.ids) for e in counting.encode_batch(frame[PREMISE].tolist())]
        for window_tokens in args.window_tokens:
            windowed, means, counts, seconds = [], [], [], 0.0
            for model_dir, piece, _, thresholds, _, _ in parts:
                model = ScoringModel(model_dir, device="cpu", variant=args.variant, window_tokens=window_tokens)
                model.probabilities(piece.head(16))  # warm-up
                started = time.perf_counter()
                probabilities = model.probabilities(piece)
                seconds += time.perf_counter() - started
                each, count = window_probabilities(model, piece)
                assert np.array_equal(by_row(each, count, np.max), probabilities)
                windowed.append(apply_thresholds(probabilities, thresholds))
                means.append(apply_thresholds(by_row(each, count, np.mean), thresholds))
                counts.append(count)
            counts = np.concatenate(counts)
            predictions = {"truncation": np.concatenate([p[4] for p in parts]),
                           "windows (max)": np.concatenate(windowed), "windows (mean)": np.concatenate(means),
                           "each alone, joined": np.concatenate([p[5] for p in parts])}
            f1 = {name: official_scores(gold, p.astype(bool)).f1 for name, p in predictions.items()}
            samples = cluster_bootstrap(gold, {k: v.astype(bool) for k, v in predictions.items()},
                                        frame[CONCLUSION].to_numpy())
            gap = samples["each alone, joined"] - samples["truncation"]
            closed = np.where(gap != 0, (samples["windows (max)"] - samples["truncation"]) / np.where(gap != 0, gap, 1),
                              np.nan)
            closed_point = (f1["windows (max)"] - f1["truncation"]) / (f1["each alone, joined"] - f1["truncation"])

            def cell(name, f1=f1, samples=samples):
                low, high = np.quantile(samples[name], [0.025, 0.975])
                return f"{f1[name]:.3f} ({low:.3f}-{high:.3f})"

            low, high = np.nanquantile(closed, [0.025, 0.975])
            print(f"| {size} | {len(frame)} ({frame[CONCLUSION].nunique()}) | {int(np.median(tokens))} | "
                  f"{window_tokens or 'max length'} | {counts.mean():.2f} | {cell('truncation')} | "
                  f"{cell('windows (max)')} | {cell('windows (mean)')} | {cell('each alone, joined')} | "
                  f"{100 * closed_point:.0f}% ({100 * low:.0f}%-{100 * high:.0f}%) | {len(frame) / seconds:.0f} | "
                  f"{counts.sum() / seconds:.0f} |", flush=True)

if __name__ == "__main__":
    main()
