"""Scoring speed side by side, in one process and as whole processes, on the same model and input.

    .venv/bin/python benchmarks/scoring_speed.py --checkpoint RUN/best --model-dir MODEL_DIR \
        [--run RUN] [--data ../shared/data/valueeval23] [--repeats 2] [--memory-rows 100000 1000000]

In one process (model loading not timed; tokenizing included), on arguments-validation.tsv:
  a. transformers text-classification pipeline, PyTorch fp32 (what the notebook's user writes). A
     mean-pooled checkpoint is not a class the stock pipeline loads: it gets the stock class of the
     same encoder (AutoModelForSequenceClassification with the checkpoint's encoder weights, a
     first-token pooler and an untrained head), which costs the same per row; its labels are not
     the model's, so its difference and F1 are not shown.
  b. Optimum ORTModelForSequenceClassification with its defaults on MODEL_DIR/model.onnx
  o. OpenVINO at its default precision on MODEL_DIR/model.onnx (bf16 on a CPU with AMX or AVX512-BF16, f32
     elsewhere), one infer request, the scorer's length-sorted batches
  c. `score` (scorer.score.score_files) with each CPU variant in MODEL_DIR, and its default
For each: rows/s, its ratio to line a, the largest probability difference from fp32 `score`, the
share of labels as fp32 `score`'s and the official F1 on labels-validation.tsv. Methods run
--repeats times, interleaved, and the best time counts (the machine is shared).

With --run, whole processes (start, imports, load, read, score, write) on the validation
arguments three times over (5,688 rows): `argvalues export RUN` with its defaults (timed once),
then `score` with its defaults against the peer scripts in benchmarks/peers/ (the pipeline,
Optimum's ORTModel, OpenVINO), interleaved, --repeats times each.

Then peak RSS of the `score` command on generated files of each --memory-rows size, with a tiny
random model (memory does not depend on it): its default variant, dynamic int8 (the packaged
model's), and each OpenVINO variant this machine runs (a runtime of its own).
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
from argvalues.variants import (  # noqa: E402
    DEVICE_VARIANTS,
    DYNAMIC_INT8,
    OPENVINO_VARIANTS,
    VARIANT_FILES,
    usable_variants,
)


def stock_model(checkpoint: Path):
    """The checkpoint's model for the stock pipeline; a mean-pooled one as the stock class of its encoder."""
    import json

    settings = json.loads((checkpoint / "config.json").read_text())
    if settings.get("argvalues_pooling") != "mean":
        return str(checkpoint), True
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained(str(checkpoint)))
    model.load_state_dict({key.replace("encoder.", f"{settings['model_type']}.", 1): value
                           for key, value in load_file(checkpoint / "model.safetensors").items()}, strict=False)
    return model.eval(), False


def pipeline_method(checkpoint: Path, arguments, scoring):
    from transformers import AutoTokenizer, pipeline

    model, same_head = stock_model(checkpoint)
    classify = pipeline("text-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(str(checkpoint)),
                        device="cpu", top_k=None, function_to_apply="sigmoid", truncation=True,
                        max_length=scoring.max_length)
    texts, pairs = scoring.template.render(arguments)
    inputs = [{"text": t, "text_pair": p} for t, p in zip(texts, pairs)] if pairs else texts
    column = {label: i for i, label in enumerate(LABELS)}
    column.update({f"LABEL_{i}": i for i in range(len(LABELS))})

    def run():
        out = np.zeros((len(inputs), len(LABELS)), dtype=np.float32)
        for row, scores in enumerate(classify(inputs, batch_size=64)):
            for item in scores:
                out[row, column[item["label"]]] = item["score"]
        return out

    run.comparable = same_head
    return run


def openvino_method(model_dir: Path, arguments, batch_size: int):
    """OpenVINO's defaults on the same model.onnx and the scorer's own batches (a strong peer script)."""
    import openvino

    from scorer.model import ScoringModel
    from scorer.windows import row_probabilities

    tokenizing = ScoringModel(model_dir, device="cpu", variant="fp32")
    core = openvino.Core()
    compiled = core.compile_model(core.read_model(str(model_dir / "model.onnx")), "CPU")
    request = compiled.create_infer_request()
    names = {port.get_any_name() for port in compiled.inputs}
    precision = compiled.get_property("INFERENCE_PRECISION_HINT")

    def run():
        prepared = tokenizing.prepare(arguments, batch_size)
        out = np.empty((int(prepared.windows_per_row.sum()), len(LABELS)), dtype=np.float32)
        for rows, feeds in prepared:  # rows: window positions (a long argument is read in windows)
            logits = request.infer({k: v for k, v in feeds.items() if k in names})[compiled.outputs[0]]
            out[rows] = 1 / (1 + np.exp(-logits))
        return row_probabilities(out, prepared.windows_per_row)

    run.precision = str(precision)
    return run


def ortmodel_method(model_dir: Path, arguments, scoring, batch_size: int):
    """Optimum's ORTModel with its defaults on the exported model.onnx (it cannot re-export a mean-pooled checkpoint)."""
    from optimum.onnxruntime import ORTModelForSequenceClassification
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = ORTModelForSequenceClassification.from_pretrained(str(model_dir), file_name="model.onnx")
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


def peak_rss_of_score(model_dir: Path, rows: int, folder: Path, variant: str = "auto") -> tuple[float, float]:
    """Peak RSS (MiB) and seconds of a `score --variant VARIANT` run over a generated file of ``rows`` rows."""
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
    result = subprocess.run([sys.executable, "-c", code, "--model", str(model_dir), "--variant", variant, "--quiet",
                             str(source), "-o", str(folder / "out.tsv")], capture_output=True, text=True, check=True,
                            cwd=ROOT)
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


def validation_copies(data: Path, target: Path, copies: int = 3) -> int:
    """Write the validation arguments ``copies`` times over to ``target`` (ids made unique); the row count."""
    lines = (data / "arguments-validation.tsv").read_text(encoding="utf-8").splitlines()
    with open(target, "w", encoding="utf-8") as handle:
        handle.write(lines[0] + "\n")
        for copy in range(copies):
            for line in lines[1:]:
                identifier, rest = line.split("\t", 1)
                handle.write(f"{identifier}-{copy}\t{rest}\n")
    return copies * (len(lines) - 1)


def whole_processes(run: Path, checkpoint: Path, data: Path, repeats: int, folder: Path) -> None:
    """`argvalues export RUN` defaults, then `score` defaults against the peer scripts, as whole processes."""
    source = folder / "validation-x3.tsv"
    rows = validation_copies(data, source)
    model_dir = folder / "exported-by-default"
    bin_dir = Path(sys.executable).parent
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    export = subprocess.run([str(bin_dir / "argvalues"), "export", str(run), "--output", str(model_dir)],
                            capture_output=True, text=True, env=environment)
    if export.returncode:
        sys.exit(f"argvalues export failed:\n{export.stderr[-2000:]}")
    print(f"\n`argvalues export RUN` (defaults): {time.perf_counter() - started:.0f} s; its log:")
    print("\n".join("  " + line for line in export.stderr.splitlines() if line.startswith(("variant", "rows/s"))))
    peers = ROOT / "benchmarks" / "peers"
    commands = {
        "score (defaults)": [str(bin_dir / "score"), "--model", str(model_dir), "--quiet", str(source), "-o"],
        "transformers pipeline script": [sys.executable, str(peers / "pipeline_script.py"), str(checkpoint),
                                         str(model_dir), str(source)],
        "Optimum ORTModel script": [sys.executable, str(peers / "ortmodel_script.py"), str(model_dir), str(source)],
        "OpenVINO script (default precision)": [sys.executable, str(peers / "openvino_script.py"), str(model_dir),
                                                str(source)],
    }
    best = {name: float("inf") for name in commands}
    for _ in range(repeats):
        for name, command in commands.items():
            target = folder / "whole.tsv"
            started = time.perf_counter()
            subprocess.run(command + [str(target)], check=True, capture_output=True, env=environment)
            best[name] = min(best[name], time.perf_counter() - started)
    peer = min(best[name] for name in commands if name.startswith(("Optimum", "OpenVINO")))
    print(f"\nwhole processes on {rows} rows (validation x3), best of {repeats}, interleaved\n")
    print(f"{'command':38} {'seconds':>8} {'rows/s':>8} {'score is':>9}")
    for name in commands:
        print(f"{name:38} {best[name]:8.1f} {rows / best[name]:8.1f} {best[name] / best['score (defaults)']:8.2f}x")
    print(f"score (defaults) vs the best peer script (Optimum, OpenVINO): {peer / best['score (defaults)']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="the PyTorch checkpoint (RUN/best)")
    parser.add_argument("--model-dir", type=Path, required=True, help="its export, with the variants to time")
    parser.add_argument("--run", type=Path, default=None, help="the training run: time whole processes too")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "valueeval23")
    parser.add_argument("--rows", type=int, default=None, help="only the first N validation arguments")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--skip", nargs="*", default=[], help="method names to leave out (pipeline, ortmodel, openvino)")
    parser.add_argument("--memory-rows", type=int, nargs="*", default=[100_000, 1_000_000])
    args = parser.parse_args()

    print(f"CPU: {cpu_description()}")
    import onnxruntime
    import torch
    import transformers

    try:
        import openvino

        openvino_version = f", openvino {openvino.__version__}"
    except ImportError:
        openvino_version = ", no openvino"
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), transformers {transformers.__version__}, "
          f"onnxruntime {onnxruntime.__version__}{openvino_version}")
    source = args.data / "arguments-validation.tsv"
    arguments, truth = read_labelled_arguments(source, args.data / "labels-validation.tsv")
    with tempfile.TemporaryDirectory() as folder:
        if args.rows:
            arguments, truth = arguments.iloc[: args.rows].reset_index(drop=True), truth[: args.rows]
            source = Path(folder) / "validation-slice.tsv"
            arguments.to_csv(source, sep="\t", index=False)
        scoring = ScoringConfig.load(args.model_dir)
        thresholds = np.asarray(scoring.thresholds, dtype=np.float32)

        from scorer.model import ScoringModel

        default = ScoringModel(args.model_dir, device="cpu").variant
        methods = {}
        if "pipeline" not in args.skip:
            methods["a. transformers pipeline, PyTorch fp32"] = pipeline_method(args.checkpoint, arguments, scoring)
        if "ortmodel" not in args.skip:
            methods["b. Optimum ORTModel, defaults"] = ortmodel_method(args.model_dir, arguments, scoring,
                                                                       args.batch_size)
        if "openvino" not in args.skip:
            run = openvino_method(args.model_dir, arguments, args.batch_size)
            methods[f"o. OpenVINO defaults ({run.precision})"] = run
        for variant in DEVICE_VARIANTS["cpu"]:
            if (args.model_dir / VARIANT_FILES[variant]).is_file() and usable_variants({variant}):
                marker = " (the default)" if variant == default else ""
                methods[f"c. score --variant {variant}{marker}"] = score_method(args.model_dir, variant, source,
                                                                               args.batch_size)

        best = {name: float("inf") for name in methods}
        outputs = {}
        for _ in range(args.repeats):
            for name, run in methods.items():
                started = time.perf_counter()
                outputs[name] = run()
                best[name] = min(best[name], time.perf_counter() - started)

        rows = len(arguments)
        base = rows / best[next(iter(methods))]
        reference = outputs["c. score --variant fp32" + (" (the default)" if default == "fp32" else "")]
        reference_labels = apply_thresholds(reference, thresholds)
        print(f"\n{rows} validation arguments, best of {args.repeats}; ratio against line 1, difference and "
              f"labels against `score --variant fp32`\n")
        print(f"{'method':44} {'rows/s':>8} {'ratio':>6} {'max |dp|':>9} {'labels as fp32':>14} {'official F1':>11}")
        for name in methods:
            speed = rows / best[name]
            if getattr(methods[name], "comparable", True):
                labels = apply_thresholds(outputs[name], thresholds)
                difference = f"{float(np.abs(outputs[name] - reference).max()):9.1e}"
                agreement = f"{100 * float((labels == reference_labels).mean()):13.2f}%"
                f1 = f"{official_scores(truth, labels).f1:11.4f}"
            else:
                difference, agreement, f1 = f"{'n/a':>9}", f"{'n/a (stock head)':>14}", f"{'n/a':>11}"
            print(f"{name:44} {speed:8.1f} {speed / base:6.2f} {difference} {agreement} {f1}")
        peers = [name for name in methods if name.startswith(("b.", "o."))]
        if peers:
            peer = max(peers, key=lambda name: rows / best[name])
            mine = next(name for name in methods if name.endswith("(the default)"))
            print(f"\n`score` default ({default}) vs the best peer ({peer}): {best[peer] / best[mine]:.2f}x")

        if args.run:
            whole_processes(args.run, args.checkpoint, args.data, args.repeats, Path(folder))

        if args.memory_rows:
            from tiny_models import make_checkpoint

            from export.build_variants import default_variants
            from export.onnx import ExportOptions, export_model

            tiny = make_checkpoint("bert", Path(folder) / "tiny-checkpoint", threshold=0.5)
            export_model(tiny, Path(folder) / "tiny-model", ExportOptions(variants=default_variants()),
                         log=lambda _: None)
            picked = ScoringModel(Path(folder) / "tiny-model", device="cpu").variant
            # dynamic int8 (the packaged model's variant) and OpenVINO's variants too: the latter a runtime of
            # their own, which compiles kernels per input shape
            variants = list(dict.fromkeys([picked, DYNAMIC_INT8, *sorted(usable_variants(OPENVINO_VARIANTS))]))
            print(f"\npeak RSS of `score` (tiny random BERT: its default variant {picked}, dynamic int8 and OpenVINO's; "
                  "memory, not speed)")
            for variant in variants:
                for count in args.memory_rows:
                    rss, seconds = peak_rss_of_score(Path(folder) / "tiny-model", count, Path(folder), variant)
                    print(f"{variant:>14} {count:>9} rows: peak RSS {rss:7.1f} MiB ({seconds:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
