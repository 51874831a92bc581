"""How the length-sorted rows of a chunk are cut into ONNX Runtime calls.

Each batch is padded to its longest row, so rows are sorted by token length first. On the CPU a
batch holds ``batch_size`` rows. On a GPU a fixed row count either starves it at short lengths or
overruns memory at long ones, so there a batch holds as many rows as fit a budget of padded tokens
(rows x longest length): thousands of short rows, a few hundred long ones.
"""

from __future__ import annotations

import numpy as np

#: Padded tokens per call on CUDA unless --batch-tokens says otherwise. On one H200 with MiniLM-L6
#: (fp16) every budget from 8,192 to 131,072 scored at the same speed within 3% (the CPU stages
#: limit there) and changed no label; 262,144 was 12% slower and took 7.9 GB of GPU memory, 65,536
#: takes 2.7 GB (benchmarks/README.md, "GPU").
DEFAULT_CUDA_BATCH_TOKENS = 65_536


def batch_bounds(sorted_lengths: np.ndarray, batch_size: int, batch_tokens: int | None = None) -> list[tuple[int, int]]:
    """[start, end) of each batch over rows sorted by ascending length.

    With ``batch_tokens``, a batch grows while (its rows + 1) x the next row's length stays within
    the budget (a row longer than the budget is a batch of its own); else every ``batch_size`` rows.
    """
    count = len(sorted_lengths)
    if not batch_tokens:
        return [(start, min(start + batch_size, count)) for start in range(0, count, batch_size)]
    bounds, start = [], 0
    while start < count:
        end = start + 1
        while end < count and (end - start + 1) * max(int(sorted_lengths[end]), 1) <= batch_tokens:
            end += 1
        bounds.append((start, end))
        start = end
    return bounds
