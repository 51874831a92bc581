"""Scoring speed side by side, in one process, on the same model and the same input.

    .venv/bin/python benchmarks/scoring_speed.py --checkpoint RUN/best --model-dir MODEL_DIR \
        [--data ../shared/data/valueeval23] [--repeats 2] [--memory-rows 100000 1000000]

Lines:
  a. transformers text-classification pipeline, PyTorch fp32 (what the notebook's user writes)
  b. Optimum ORTModelForSequenceClassification with its defaults (exported from the checkpoint)
  c. `score` (scorer.score.score_files) with each variant in MODEL_DIR
For each: rows/s on arguments-validation.tsv end to end (tokenizing included, model loading not),
its ratio to line a, the largest probability difference from line a, and the official F1 on
labels-validation.tsv at the model's own thresholds. Each method runs --repeats times, interleaved,
and the best time counts (the machine is shared). Then peak RSS of the `score` command on
generated files of each --memory-rows size, with a tiny random model (memory does not depend on it).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from argvalues.contract import LABELS, read_labelled_arguments  # noqa: E402
from argvalues.metrics import apply_thresholds, official_scores  # noqa: E402
from argvalues.model_config import ScoringConfig  # noqa: E402
from argvalues.variants import VARIANT_FILES  # noqa: E402


def pipeline_method(checkpoint: Path, arguments, scoring):
    from transformers import pipeline

    classify = pipeline("text-classification", model=str(checkpoint), tokenizer=str(checkpoint), device="cpu",
                        top_k=None, function_to_apply="sigmoid", truncation=True, max_length=scoring.max_length)
    texts, pairs = scoring.template.render(arguments)
    inputs = [{"text": t, "text_pair": p} for t, p in zip(texts, pairs)] if pairs else texts
    column = {label: i for i, label in enumerate(LABELS)}

    def run():
        out = np.zeros((len(inputs), len(LABELS)), dtype=np.float32)
        for row, scores in enumerate(classify(inputs)):
            for item in scores:
                out[row, column[item["label"]]] = item["score"]
        return out

    return run


def ortmodel_method(checkpoint: Path, arguments, scoring, batch_size: int):
    from optimum.onnxruntime import ORTModelForSequenceClassification
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
    model = ORTModelForSequenceClassification.from_pretrained(str(checkpoint), export=True)
    texts, pairs = scoring.template.render(arguments)

    def run():
        outputs = []
        for start in range(0, len(texts), batch_size):
            encoded = tokenizer(texts[start:start + batch_size], pairs[start:start + batch_size] if pairs else None,
                                padding=True, truncation=True, max_length=scoring.max_length, return_tensors="np")
            logits = model(**encoded).logits
            outputs.append(1 / (1 + np.exp(-np.asarray(logits, dtype=np.float32))))
        return np.concatenate(outputs)

    return run


def score_method(model_dir: Path, variant: str, source: Path, batch_size: int, parallel_calls: int | None = None):
    import pandas as pd

    from scorer.model import ScoringModel
    from scorer.score import ScoreOptions, score_files

    model = ScoringModel(model_dir, device="cpu", variant=variant, parallel_calls=parallel_calls)
    options = ScoreOptions(model_dir=str(model_dir), probabilities=True, batch_size=batch_size, variant=variant)

    def run():
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "scores.tsv"
            score_files([str(source)], str(out), options, model=model)
            return pd.read_csv(out, sep="\t")[LABELS].to_numpy(dtype=np.float32)

    return run


def peak_rss_of_score(model_dir: Path, rows: int, folder: Path) -> tuple[float, float]:
    """Peak RSS (MiB) and seconds of a `score` run over a generated file of ``rows`` rows."""
    lines = (ROOT / "examples" / "arguments.tsv").read_text().splitlines()
    examples = [line.split("\t") for line in lines[1:]]
    source = folder / f"generated-{rows}.tsv"
    with open(source, "w") as handle:
        handle.write(lines[0] + "\n")
        for i in range(rows):
            row = examples[i % len(examples)]
            handle.write(f"G{i:08d}\t{row[1]}\t{row[2]}\t{row[3]}\n")
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over fork and exec, so a child of
    # this (large) process would report the parent's peak.
    code = ("import sys; from scorer.cli import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code\n"
            "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])")
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code, "--model", str(model_dir), "--quiet", str(source),
                             "-o", str(folder / "out.tsv")], capture_output=True, text=True, check=True, cwd=ROOT)
    seconds = time.perf_counter() - started
    source.unlink()
    return int(result.stdout.strip().splitlines()[-1]) / 1024, seconds


def cpu_description() -> str:
    model, flags = platform.processor() or "?", []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("?", "x86_64", ""):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = [f for f in line.split(":", 1)[1].split() if f.startswith(("avx", "fma", "amx"))]
                break
    except OSError:
        pass
    return f"{model}, {len(os.sched_getaffinity(0))} cores, {' '.join(flags)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="the PyTorch checkpoint (RUN/best)")
    parser.add_argument("--model-dir", type=Path, required=True, help="its export, with the variants to time")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "valueeval23")
    parser.add_argument("--rows", type=int, default=None, help="only the first N validation arguments")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip", nargs="*", default=[], help="method names to leave out (pipeline, ortmodel)")
    parser.add_argument("--memory-rows", type=int, nargs="*", default=[100_000, 1_000_000])
    args = parser.parse_args()

    print(f"CPU: {cpu_description()}")
    import onnxruntime
    import torch
    import transformers

    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), transformers {transformers.__version__}, "
          f"onnxruntime {onnxruntime.__version__}")
    source = args.data / "arguments-validation.tsv"
    arguments, truth = read_labelled_arguments(source, args.data / "labels-validation.tsv")
    with tempfile.TemporaryDirectory() as folder:
        if args.rows:
            arguments, truth = arguments.iloc[: args.rows].reset_index(drop=True), truth[: args.rows]
            source = Path(folder) / "validation-slice.tsv"
            arguments.to_csv(source, sep="\t", index=False)
        scoring = ScoringConfig.load(args.model_dir)
        thresholds = np.asarray(scoring.thresholds, dtype=np.float32)

        methods = {}
        if "pipeline" not in args.skip:
            methods["a. transformers pipeline, PyTorch fp32"] = pipeline_method(args.checkpoint, arguments, scoring)
        if "ortmodel" not in args.skip:
            methods["b. Optimum ORTModel, defaults"] = ortmodel_method(args.checkpoint, arguments, scoring,
                                                                       args.batch_size)
        for variant, name in VARIANT_FILES.items():
            if (args.model_dir / name).is_file() and variant != "fp16":
                methods[f"c. score --variant {variant}"] = score_method(args.model_dir, variant, source,
                                                                        args.batch_size)
        if (args.model_dir / VARIANT_FILES["int8"]).is_file():  # one call at a time, all threads on it (before)
            methods["c. score --variant int8, calls in turn"] = score_method(args.model_dir, "int8", source,
                                                                             args.batch_size, parallel_calls=1)

        best = {name: float("inf") for name in methods}
        outputs = {}
        for _ in range(args.repeats):
            for name, run in methods.items():
                started = time.perf_counter()
                outputs[name] = run()
                best[name] = min(best[name], time.perf_counter() - started)

        rows = len(arguments)
        reference_name = next(iter(methods))
        reference = outputs[reference_name]
        base = rows / best[reference_name]
        print(f"\n{rows} validation arguments, best of {args.repeats}; ratio and difference against line 1\n")
        print(f"{'method':42} {'rows/s':>8} {'ratio':>6} {'max |dp|':>9} {'official F1':>11}")
        for name in methods:
            speed = rows / best[name]
            difference = float(np.abs(outputs[name] - reference).max())
            f1 = official_scores(truth, apply_thresholds(outputs[name], thresholds)).f1
            print(f"{name:42} {speed:8.1f} {speed / base:6.2f} {difference:9.1e} {f1:11.4f}")

        if args.memory_rows:
            from export.onnx import export_model
            from tiny_models import make_checkpoint

            tiny = make_checkpoint("bert", Path(folder) / "tiny-checkpoint", threshold=0.5)
            export_model(tiny, Path(folder) / "tiny-model", log=lambda _: None)
            print("\npeak RSS of `score` (tiny random BERT; memory, not speed)")
            for count in args.memory_rows:
                rss, seconds = peak_rss_of_score(Path(folder) / "tiny-model", count, Path(folder))
                print(f"{count:>9} rows: peak RSS {rss:7.1f} MiB ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
