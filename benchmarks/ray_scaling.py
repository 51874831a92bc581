"""`score --engine ray` with 1 and 2 workers against the local engine, on one generated file.

    .venv/bin/python benchmarks/ray_scaling.py --model-dir MODEL_DIR [--rows 100000]
        [--data ../shared/data/valueeval23] [--workers 1 2]

The file repeats the validation arguments with fresh IDs. Every configuration runs the real
`score` command in its own process, one after another in one run (this machine is shared and
noisy: only ratios within one run compare). Reported: wall time of the whole command (Ray's
start included), rows/s over that wall time, rows/s as `score` reports it (scoring only), and
whether each output is byte-identical to the local engine's.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCORE = [sys.executable, "-c", "from scorer.cli import main; main()"]


def generate(source: Path, rows: int, target: Path) -> None:
    lines = source.read_text(encoding="utf-8").splitlines()
    body = [line.split("\t") for line in lines[1:]]
    with open(target, "w", encoding="utf-8") as handle:
        handle.write(lines[0] + "\n")
        for i in range(rows):
            row = body[i % len(body)]
            handle.write("\t".join([f"G{i:08d}", *row[1:]]) + "\n")


def run(name: str, command: list[str], output: Path) -> dict:
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"{name} failed ({done.returncode}): {done.stderr.strip().splitlines()[-1]}")
    reported = re.search(r"scored (\d+) rows in ([\d.]+) s", done.stderr)
    rows, seconds = int(reported.group(1)), float(reported.group(2))
    return {"name": name, "wall": wall, "rows": rows, "scoring_seconds": seconds,
            "sha256": hashlib.sha256(output.read_bytes()).hexdigest()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True, type=Path)
    parser.add_argument("--data", default=Path("../shared/data/valueeval23"), type=Path)
    parser.add_argument("--rows", default=100_000, type=int)
    parser.add_argument("--workers", nargs="+", default=[1, 2], type=int)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ray-scaling-") as folder:
        folder = Path(folder)
        corpus = folder / "corpus.tsv"
        generate(args.data / "arguments-validation.tsv", args.rows, corpus)
        base = ["--model", str(args.model_dir), corpus]
        results = [run("local engine", [*SCORE, *map(str, base), "-o", str(folder / "local.tsv")],
                       folder / "local.tsv")]
        for workers in args.workers:
            output = folder / f"ray-{workers}.tsv"
            results.append(run(f"ray, {workers} worker(s)",
                               [*SCORE, *map(str, base), "--engine", "ray", "--num-workers", str(workers),
                                "-o", str(output)], output))

    print(f"{args.rows} rows, model {args.model_dir}, {len(os.sched_getaffinity(0))} cores")
    print("| engine | wall s | rows/s (wall) | rows/s (scoring) | vs local (wall) | output = local |")
    print("| --- | --- | --- | --- | --- | --- |")
    local = results[0]
    for result in results:
        print(f"| {result['name']} | {result['wall']:.1f} | {result['rows'] / result['wall']:.1f} | "
              f"{result['rows'] / result['scoring_seconds']:.1f} | {local['wall'] / result['wall']:.2f}x | "
              f"{'yes' if result['sha256'] == local['sha256'] else 'NO'} |")


if __name__ == "__main__":
    main()
