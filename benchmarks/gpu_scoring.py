"""Scoring on a GPU, side by side in one run: the transformers pipeline, Optimum's ORTModel and `score`.

    python benchmarks/gpu_scoring.py --checkpoint RUN/best --model-dir MODEL_DIR --data DATA_DIR \
        [--rows 40000] [--big-rows 1000000] [--extra NAME=CHECKPOINT:MODEL_DIR ...] [--out OUT]

Each method runs in a child process of its own (its GPU memory then is its own: the peak of
`nvidia-smi`'s memory.used during the run, less what was in use before) on the same input: the
validation arguments repeated to --rows rows with unique IDs (the first 1,896 rows are the
validation set, for the official F1), end to end (tokenizing included, model loading not):

  pipeline fp32      transformers text-classification pipeline on cuda:0, batch 32, the checkpoint in fp32
  pipeline fp16      the same with the weights in fp16 (torch_dtype=torch.float16)
  ORTModel CUDA      Optimum's ORTModelForSequenceClassification on MODEL_DIR/model.onnx with
                     provider="CUDAExecutionProvider" and its defaults (I/O binding on), batches of 32
  score VARIANT      `score` (scorer.score.score_files) from TSV to TSV, its defaults on CUDA

Then `score`'s token budget against label stability, the 1M-row file end to end through the
`score` command (rows/s, peak RSS, peak GPU memory) and each stage of it timed alone (reader,
tokenizer, inference, writer) on the device's cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

VALIDATION_ROWS = 1896


def _cuda() -> bool:
    """A GPU for torch and Optimum (without one, the methods run on the CPU: a smoke test of this script)."""
    import torch

    return torch.cuda.is_available()


# ---- the methods (each runs in a child process: --worker METHOD) ----

def _inputs(source: Path, scoring):
    from argvalues.contract import read_arguments

    arguments = read_arguments(source)
    texts, pairs = scoring.template.render(arguments)
    return texts, pairs


def pipeline_run(checkpoint: Path, source: Path, scoring, half: bool):
    import torch
    from transformers import AutoTokenizer, pipeline

    from argvalues.contract import LABELS
    from trainer.modeling import load_classifier

    model = load_classifier(str(checkpoint))  # the run's own head (mean pooling), as `score` runs it
    if half:
        model = model.to(torch.float16)  # what torch_dtype=torch.float16 loads
    if _cuda():
        model = model.to("cuda")
    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
    classify = pipeline("text-classification", model=model, tokenizer=tokenizer, device=0 if _cuda() else "cpu",
                        batch_size=32,
                        top_k=None, function_to_apply="sigmoid", truncation=True, max_length=scoring.max_length)
    texts, pairs = _inputs(source, scoring)
    column = {label: i for i, label in enumerate(LABELS)}
    inputs = [{"text": t, "text_pair": p} for t, p in zip(texts, pairs)] if pairs else texts

    def run():
        out = np.zeros((len(inputs), len(LABELS)), dtype=np.float32)
        for row, scores in enumerate(classify(inputs)):
            for item in scores:
                out[row, column[item["label"]]] = item["score"]
        return out

    return run


def ortmodel_run(model_dir: Path, source: Path, scoring, batch_size: int = 32):
    from optimum.onnxruntime import ORTModelForSequenceClassification
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    device = "cuda" if _cuda() else "cpu"
    model = ORTModelForSequenceClassification.from_pretrained(
        str(model_dir), file_name="model.onnx", provider="CUDAExecutionProvider" if _cuda() else "CPUExecutionProvider")
    texts, pairs = _inputs(source, scoring)

    def run():
        outputs = []
        for start in range(0, len(texts), batch_size):
            encoded = tokenizer(texts[start:start + batch_size], pairs[start:start + batch_size] if pairs else None,
                                padding=True, truncation=True, max_length=scoring.max_length, return_tensors="pt")
            logits = model(**{k: v.to(device) for k, v in encoded.items()}).logits
            outputs.append(torch_sigmoid(logits))
        return np.concatenate(outputs)

    def torch_sigmoid(logits):
        return (1 / (1 + np.exp(-logits.float().cpu().numpy()))).astype(np.float32)

    return run


def score_run(model_dir: Path, source: Path, variant: str, batch_tokens: int | None, batch_size: int = 64):
    import pandas as pd

    from argvalues.contract import LABELS
    from scorer.model import ScoringModel
    from scorer.score import ScoreOptions, score_files

    model = ScoringModel(model_dir, device="auto", variant=variant, batch_tokens=batch_tokens)
    options = ScoreOptions(model_dir=str(model_dir), probabilities=True, variant=variant, batch_tokens=batch_tokens,
                           batch_size=batch_size)
    print(f"  [{model.provider}, {model.variant}, batch tokens {model.batch_tokens}]", file=sys.stderr)

    def run():
        with tempfile.TemporaryDirectory() as folder:
            out = Path(folder) / "scores.tsv"
            score_files([str(source)], str(out), options, model=model)
            return pd.read_csv(out, sep="\t")[LABELS].to_numpy(dtype=np.float32)

    return run


def worker(args) -> None:
    from argvalues.model_config import ScoringConfig

    scoring = ScoringConfig.load(args.model_dir)
    method, source = args.worker, args.source
    if method == "pipeline-fp32":
        run = pipeline_run(args.checkpoint, source, scoring, half=False)
    elif method == "pipeline-fp16":
        run = pipeline_run(args.checkpoint, source, scoring, half=True)
    elif method == "ortmodel":
        run = ortmodel_run(args.model_dir, source, scoring)
    else:  # score:VARIANT[:TOKENS]
        _, variant, *tokens = method.split(":")
        run = score_run(args.model_dir, source, variant, int(tokens[0]) if tokens else None)
    times = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - started)
    np.save(args.result, out[:VALIDATION_ROWS])
    print(json.dumps({"rows": len(out), "seconds": min(times), "all_seconds": times}))


# ---- the driver ----

class GpuMemory:
    """Peak of nvidia-smi's memory.used (MiB) while a child runs, polled every 50 ms."""

    def __init__(self):
        self.peak, self.base, self._stop = 0, self._used(), threading.Event()

    @staticmethod
    def _used() -> int:
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=10).stdout
            return int(out.split()[0])
        except Exception:
            return 0

    def __enter__(self):
        def poll():
            while not self._stop.wait(0.05):
                self.peak = max(self.peak, self._used())
        self._thread = threading.Thread(target=poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def mib(self) -> int:
        return max(0, self.peak - self.base)


def run_worker(args, method: str, source: Path, result: Path, checkpoint=None, model_dir=None) -> dict:
    command = [sys.executable, __file__, "--worker", method, "--source", str(source), "--result", str(result),
               "--checkpoint", str(checkpoint or args.checkpoint), "--model-dir", str(model_dir or args.model_dir),
               "--repeats", str(args.repeats)]
    with GpuMemory() as memory:
        done = subprocess.run(command, check=False, capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        tail = (done.stderr.strip().splitlines() or ["?"])[-3:]
        print(f"  {method}: FAILED: {' | '.join(tail)}", flush=True)
        return {"failed": True}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    stats = json.loads(lines[-1])
    stats["gpu_mib"] = memory.mib
    for line in done.stderr.splitlines():
        if line.startswith("  ["):
            stats["note"] = line.strip()
    return stats


def repeated_input(data: Path, rows: int, target: Path) -> Path:
    """The validation arguments cycled to ``rows`` rows, with unique IDs (the first pass keeps its own)."""
    lines = (data / "arguments-validation.tsv").read_text(encoding="utf-8").splitlines()
    header, body = lines[0], [line.split("\t", 1) for line in lines[1:] if line.strip()]
    with open(target, "w", encoding="utf-8") as handle:
        handle.write(header + "\n")
        for i in range(rows):
            identifier, rest = body[i % len(body)]
            handle.write(f"{identifier if i < len(body) else f'R{i:08d}'}\t{rest}\n")
    return target


def versions() -> str:
    import onnxruntime

    from scorer.runtime import _build_info, driver_cuda_version

    parts = []
    try:
        parts.append(subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                                     "--format=csv,noheader"], check=False, capture_output=True, text=True).stdout.strip())
    except OSError:
        parts.append("no nvidia-smi")
    package, version, cuda = _build_info(onnxruntime)
    parts.append(f"driver CUDA {driver_cuda_version()}; {package} {version} (CUDA {cuda})")
    from importlib import metadata

    for name in ("torch", "transformers", "optimum", "optimum-onnx", "tokenizers", "numpy", "pandas"):
        try:
            parts.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{name} missing")
    try:
        import torch

        parts.append(f"torch CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
    except Exception:
        pass
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    parts.append(f"CPU {cpu}, {len(os.sched_getaffinity(0))} cores")
    return "; ".join(parts)


def f1_of(probabilities: np.ndarray, truth: np.ndarray, thresholds: np.ndarray) -> float:
    from argvalues.metrics import apply_thresholds, official_scores

    return official_scores(truth, apply_thresholds(probabilities, thresholds)).f1


def compare(args, name: str, methods: list[str], source: Path, folder: Path, checkpoint=None, model_dir=None,
            log=print) -> dict:
    """Each method on ``source``; rows/s, ratios, peak GPU memory, differences and F1 on validation."""
    from argvalues.contract import read_labelled_arguments
    from argvalues.model_config import ScoringConfig

    model_dir = model_dir or args.model_dir
    _, truth = read_labelled_arguments(args.data / "arguments-validation.tsv", args.data / "labels-validation.tsv")
    thresholds = np.asarray(ScoringConfig.load(model_dir).thresholds, dtype=np.float32)
    results, outputs = {}, {}
    for method in methods:
        result = folder / f"{name}-{method.replace(':', '_')}.npy"
        stats = run_worker(args, method, source, result, checkpoint, model_dir)
        results[method] = stats
        if not stats.get("failed"):
            outputs[method] = np.load(result)
            log(f"  {method}: {stats['rows'] / stats['seconds']:.0f} rows/s ({stats.get('note', '')})")
    reference = next(iter(outputs), None)
    log(f"\n{name}: {source.name}, rows/s best of {args.repeats}; ratios against each baseline\n")
    log("| method | rows/s | x pipeline fp32 | x pipeline fp16 | x ORTModel | peak GPU MiB | max abs dp | F1 |")
    log("| --- | --- | --- | --- | --- | --- | --- | --- |")
    speed = {m: s["rows"] / s["seconds"] for m, s in results.items() if not s.get("failed")}
    for method, stats in results.items():
        if stats.get("failed"):
            log(f"| {method} | failed | | | | | | |")
            continue
        def ratio(base: str, method: str = method) -> str:
            return f"{speed[method] / speed[base]:.2f}" if base in speed else "-"

        difference = float(np.abs(outputs[method] - outputs[reference]).max())
        log(f"| {method} | {speed[method]:.0f} | {ratio('pipeline-fp32')} | {ratio('pipeline-fp16')} | "
            f"{ratio('ortmodel')} | {stats['gpu_mib']} | {difference:.1e} | {f1_of(outputs[method], truth, thresholds):.4f} |")
    return {"speed": speed, "outputs": outputs, "results": results}


def stages(model_dir: Path, source: Path, chunk_rows: int = 8192, log=print) -> None:
    """Each stage of `score` alone over ``source``: reader, tokenizer (+ padded batches), inference, writer."""
    from argvalues.contract import argument_rows
    from scorer.model import ScoringModel
    from scorer.options import ScoreOptions
    from scorer.output import format_rows, output_values

    model = ScoringModel(model_dir, device="auto")
    started = time.perf_counter()
    chunks = [chunk.frame for chunk in argument_rows(str(source), model.required_columns, "fail").chunks(chunk_rows)]
    read = time.perf_counter() - started
    rows = sum(len(frame) for frame in chunks)
    started = time.perf_counter()
    prepared = [model.prepare(frame) for frame in chunks]
    tokenize = time.perf_counter() - started
    model.infer(prepared[0])  # warm-up (CUDA kernels, cuDNN/cuBLAS handles)
    started = time.perf_counter()
    probabilities = [model.infer(batches) for batches in prepared]
    infer = time.perf_counter() - started
    options = ScoreOptions(model_dir=str(model_dir))
    with tempfile.TemporaryFile("wb") as handle:
        started = time.perf_counter()
        for frame, values in zip(chunks, probabilities):
            handle.write(format_rows(frame["Argument ID"].to_numpy(), output_values(model, values, options),
                                     model.labels).encode())
        write = time.perf_counter() - started
    log(f"\nstages of `score` alone over {rows} rows ({model.provider}, {model.variant}, chunks of {chunk_rows}):\n")
    log("| stage | seconds | rows/s |\n| --- | --- | --- |")
    for stage, seconds in (("read (contract reader)", read), ("tokenize + padded batches", tokenize),
                           ("inference (ONNX Runtime)", infer), ("format + write (0/1)", write)):
        log(f"| {stage} | {seconds:.2f} | {rows / seconds:.0f} |")


def score_command(model_dir: Path, source: Path, target: Path, extra: list[str]) -> tuple[float, float, int]:
    """The `score` command as a user runs it: seconds, peak RSS (MiB, VmHWM) and peak GPU MiB."""
    code = ("import sys; from scorer.cli import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])")
    with GpuMemory() as memory:
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", code, "--model", str(model_dir), str(source), "-o", str(target),
                               *extra], check=False, capture_output=True, text=True, cwd=ROOT)
        seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"score failed: {done.stderr[-2000:]}")
    import re

    sys.stderr.write(done.stderr)
    scored = re.findall(r"scored \d+ rows in [\d.]+ s \((\d+) rows/s\)", done.stderr)
    return seconds, int(done.stdout.strip().splitlines()[-1]) / 1024, memory.mib, int(scored[-1]) if scored else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "valueeval23")
    parser.add_argument("--rows", type=int, default=40_000, help="rows of the speed input (validation cycled)")
    parser.add_argument("--big-rows", type=int, default=1_000_000, help="rows of the end-to-end file; 0: skip")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--extra", nargs="*", default=[], metavar="NAME=CHECKPOINT:MODEL_DIR",
                        help="more models (an ensemble, an MPNet): score against the pipeline")
    parser.add_argument("--budgets", type=int, nargs="*", default=[8192, 16384, 32768, 65536, 131072, 262144])
    parser.add_argument("--only-big", action="store_true", help="only the end-to-end file and its stages")
    parser.add_argument("--out", type=Path, default=None, help="write the report here too")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--source", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    report = open(args.out, "w") if args.out else None

    def log(line: str = "") -> None:
        print(line, flush=True)
        if report:
            report.write(line + "\n")
            report.flush()

    log(f"versions: {versions()}")
    manifest = args.model_dir / "manifest.json"
    if manifest.is_file():
        variants = json.loads(manifest.read_text()).get("variants", {})
        for name, info in variants.items():
            log(f"export check of {name}: " + ", ".join(f"{k} {info[k]}" for k in
                ("checked_on", "max_abs_difference", "label_flips", "f1_pytorch", "f1", "f1_drift", "default_ok")
                if k in info))
    with tempfile.TemporaryDirectory(dir="/tmp") as scratch:
        folder = Path(scratch)
        if not args.only_big:
            source = repeated_input(args.data, args.rows, folder / f"speed-{args.rows}.tsv")
            has_fp16 = (args.model_dir / "model_fp16.onnx").is_file()
            methods = ["pipeline-fp32", "pipeline-fp16", "ortmodel", "score:fp32"] + (["score:fp16"] if has_fp16 else [])
            main_run = compare(args, "MiniLM", methods, source, folder, log=log)

            from argvalues.contract import read_labelled_arguments
            from argvalues.metrics import apply_thresholds
            from argvalues.model_config import ScoringConfig

            _, truth = read_labelled_arguments(args.data / "arguments-validation.tsv", args.data / "labels-validation.tsv")
            thresholds = np.asarray(ScoringConfig.load(args.model_dir).thresholds, dtype=np.float32)
            variant = "fp16" if has_fp16 else "fp32"
            log(f"\ntoken budget of `score --variant {variant}` (rows/s on {source.name}; labels of the 1,896 "
                f"validation rows that differ from the default budget's; F1):\n")
            log("| --batch-tokens | rows/s | peak GPU MiB | labels changed | F1 |\n| --- | --- | --- | --- | --- |")
            reference = main_run["outputs"].get(f"score:{variant}")
            for budget in args.budgets + [0]:
                stats = run_worker(args, f"score:{variant}:{budget}", source, folder / f"budget-{budget}.npy")
                if stats.get("failed") or reference is None:
                    continue
                out = np.load(folder / f"budget-{budget}.npy")
                changed = int((apply_thresholds(out, thresholds) != apply_thresholds(reference, thresholds)).sum())
                label = f"{budget}" if budget else "0 (batches of --batch-size 64)"
                log(f"| {label} | {stats['rows'] / stats['seconds']:.0f} | {stats['gpu_mib']} | {changed} of "
                    f"{reference.size} | {f1_of(out, truth, thresholds):.4f} |")

            for spec in args.extra:
                name, paths = spec.split("=", 1)
                checkpoint, model_dir = (Path(p) for p in paths.split(":", 1))
                extra_methods = ["pipeline-fp32", "pipeline-fp16", "score:fp32"]
                if (model_dir / "model_fp16.onnx").is_file():
                    extra_methods.append("score:fp16")
                if not (checkpoint / "config.json").is_file():
                    extra_methods = [m for m in extra_methods if not m.startswith("pipeline")]
                compare(args, name, extra_methods, source, folder, checkpoint, model_dir, log=log)

        if args.big_rows:
            big = repeated_input(args.data, args.big_rows, folder / f"big-{args.big_rows}.tsv")
            log(f"\n{args.big_rows} rows end to end: `score --model MODEL {big.name} -o OUT.tsv` "
                f"({big.stat().st_size / 2**20:.0f} MiB in; seconds of the whole command, start and model "
                f"loading included)\n")
            log("| run | seconds | rows/s | rows/s as `score` reports it (loading excluded) | peak RSS MiB | peak GPU MiB |\n"
                "| --- | --- | --- | --- | --- | --- |")
            tenth = repeated_input(args.data, args.big_rows // 10, folder / f"big-{args.big_rows // 10}.tsv")
            for label, source, extra in ((f"{args.big_rows // 10} rows, defaults", tenth, []),
                                         (f"{args.big_rows} rows, defaults", big, []),
                                         (f"{args.big_rows} rows, --chunk-rows 32768", big, ["--chunk-rows", "32768"])):
                seconds, rss, gpu, own = score_command(args.model_dir, source, folder / "big-out.tsv", extra)
                rows = args.big_rows // 10 if source == tenth else args.big_rows
                log(f"| {label} | {seconds:.1f} | {rows / seconds:.0f} | {own} | {rss:.0f} | {gpu} |")
            stage_rows = min(args.big_rows, 200_000)
            stages(args.model_dir, repeated_input(args.data, stage_rows, folder / "stages.tsv"), log=log)
    if report:
        report.close()


if __name__ == "__main__":
    main()
