"""Peak memory and speed of reading each input format through the contract's row reader.

    .venv/bin/python benchmarks/format_memory.py [--rows 100000 1000000] [--chunk-rows 8192]

Writes the shipped example arguments, repeated with unique IDs, as TSV, CSV, JSON lines, Parquet
(row groups of 65,536 rows) and compressed TSV/CSV/JSON lines, then reads each file in a fresh
process with ``argument_rows(...).chunks()``, as ``score`` does, keeping nothing, and prints its
peak RSS (``VmHWM``: the child's own, unlike ``ru_maxrss`` which carries over across fork/exec)
and rows/s. Scoring adds the model's memory, the same for every format; what the formats change
is reading. Flat memory shows as the same peak at 10x the rows.
"""

from __future__ import annotations

import argparse
import bz2
import csv
import gzip
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD = """
import sys, time
from argvalues.contract import argument_rows
started = time.perf_counter()
rows = 0
for chunk in argument_rows(sys.argv[1], on_bad_row="fail", file_format=None).chunks(int(sys.argv[2])):
    rows += len(chunk.frame)
seconds = time.perf_counter() - started
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM")).split()[1]
print(rows, seconds, int(peak) / 1024)
"""


def example_rows() -> list[list[str]]:
    lines = (ROOT / "examples" / "arguments.tsv").read_text().splitlines()
    return [line.split("\t") for line in lines[1:]]


def write_files(count: int, folder: Path) -> dict[str, Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq
    import zstandard

    base = example_rows()
    header = ["Argument ID", "Conclusion", "Stance", "Premise"]

    def rows():
        for i in range(count):
            row = base[i % len(base)]
            yield [f"R{i:08d}", row[1], row[2], f"{row[3]} (case {i})"]

    files = {}
    tsv = folder / f"in-{count}.tsv"
    with open(tsv, "w") as handle:
        handle.write("\t".join(header) + "\n")
        handle.writelines("\t".join(row) + "\n" for row in rows())
    files["tsv"] = tsv
    csv_path = folder / f"in-{count}.csv"
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows())
    files["csv"] = csv_path
    jsonl = folder / f"in-{count}.jsonl"
    with open(jsonl, "w") as handle:
        handle.writelines(json.dumps(dict(zip(header, row))) + "\n" for row in rows())
    files["jsonl"] = jsonl
    parquet = folder / f"in-{count}.parquet"
    writer = None
    batch: list[list[str]] = []
    for row in rows():
        batch.append(row)
        if len(batch) == 65_536:
            table = pa.table({name: [r[i] for r in batch] for i, name in enumerate(header)})
            writer = writer or pq.ParquetWriter(parquet, table.schema)
            writer.write_table(table)
            batch = []
    if batch:
        table = pa.table({name: [r[i] for r in batch] for i, name in enumerate(header)})
        writer = writer or pq.ParquetWriter(parquet, table.schema)
        writer.write_table(table)
    writer.close()
    files["parquet"] = parquet
    files["tsv.gz"] = folder / f"in-{count}.tsv.gz"
    files["tsv.gz"].write_bytes(gzip.compress(tsv.read_bytes(), compresslevel=6))
    files["csv.bz2"] = folder / f"in-{count}.csv.bz2"
    files["csv.bz2"].write_bytes(bz2.compress(csv_path.read_bytes()))
    files["jsonl.zst"] = folder / f"in-{count}.jsonl.zst"
    files["jsonl.zst"].write_bytes(zstandard.ZstdCompressor().compress(jsonl.read_bytes()))
    return files


def read_in_child(path: Path, chunk_rows: int) -> tuple[int, float, float]:
    result = subprocess.run([sys.executable, "-c", CHILD, str(path), str(chunk_rows)], capture_output=True, text=True,
                            cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, check=True)
    rows, seconds, peak = result.stdout.split()
    return int(rows), float(seconds), float(peak)


def cpu_description() -> str:
    flags = ""
    try:
        info = Path("/proc/cpuinfo").read_text()
        model = next(line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name"))
        flag_line = next(line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags"))
        flags = " ".join(f for f in flag_line if f.startswith(("avx", "sse4", "amx", "fma")))
    except (OSError, StopIteration):
        model = platform.processor()
    return f"{model}; flags: {flags}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--chunk-rows", type=int, default=8192)
    args = parser.parse_args()
    print(f"CPU: {cpu_description()}")
    results: dict[str, dict[int, tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for count in args.rows:
            files = write_files(count, Path(folder))
            for name, path in files.items():
                rows, seconds, peak = read_in_child(path, args.chunk_rows)
                assert rows == count, (name, rows)
                results.setdefault(name, {})[count] = (peak, rows / seconds)
                path.unlink()
    smallest, largest = min(args.rows), max(args.rows)
    print(f"\n| format | peak RSS, {smallest:,} rows | peak RSS, {largest:,} rows | ratio | rows/s ({largest:,}) |")
    print("| --- | --- | --- | --- | --- |")
    for name, by_count in results.items():
        low, high = by_count[smallest][0], by_count[largest][0]
        print(f"| {name} | {low:.1f} MiB | {high:.1f} MiB | {high / low:.2f}x | {by_count[largest][1]:,.0f} |")


if __name__ == "__main__":
    main()
