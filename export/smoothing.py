"""SmoothQuant (Xiao et al., 2023) on an ONNX graph: activation outliers moved into the weights.

A MatMul ``X @ W`` is the same product as ``(X / s) @ (s[:, None] * W)`` for any positive per-channel
``s``. int8 quantizes ``X`` with one scale per tensor, so a few channels of large values (the
embeddings' and layer norms' outlier channels of BERT-like encoders) take most of its 256 steps and
the other channels are left with few; dividing them by ``s = max|X|^alpha / max|W|^(1 - alpha)``
evens the channels out and puts the difference into the weights, which int8 quantizes per output
channel. The fp32 graph computes the same function (up to rounding); only its int8 versions change.

ONNX Runtime's own SmoothQuant option needs Intel Neural Compressor; this is the same transform
without it, written as a plain ``Mul`` by ``1 / s`` before each group of MatMuls that share an input
(query, key and value share one), which the quantizers then treat like any other activation.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

#: SmoothQuant's migration strength: 0.5 splits the range evenly between activations and weights
#: (the paper's choice for most models).
ALPHA = 0.5
SMOOTHED_SUFFIX = "/SmoothQuant"


def weight_matmuls(model) -> dict[str, list]:
    """The MatMuls whose second input is a 2-D weight, grouped by the activation they read."""
    weights = {tensor.name for tensor in model.graph.initializer if len(tensor.dims) == 2}
    groups: dict[str, list] = {}
    for node in model.graph.node:
        if node.op_type == "MatMul" and node.input[1] in weights:
            groups.setdefault(node.input[0], []).append(node)
    return groups


def channel_ranges(source: Path, activations: list[str], feeds: list[dict]) -> dict[str, np.ndarray]:
    """max|x| of each last-axis channel of the ``activations`` of ``source`` over ``feeds``."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(source))
    present = {output.name for output in model.graph.output}
    model.graph.output.extend(onnx.ValueInfoProto(name=name) for name in activations if name not in present)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every tensor named
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    ranges: dict[str, np.ndarray] = {}
    for feed in feeds:
        for name, value in zip(activations, session.run(activations, feed)):
            channels = np.abs(value).reshape(-1, value.shape[-1]).max(axis=0)
            ranges[name] = np.maximum(ranges[name], channels) if name in ranges else channels
    return ranges


def measured_groups(source: Path, feeds: list[dict], skip: frozenset[str]):
    """``source`` loaded; its weight MatMuls grouped by input, but for groups with a MatMul named in
    ``skip``; each group's input channel ranges over ``feeds``; how many nodes read each tensor."""
    import onnx

    model = onnx.load(str(source))
    groups = {activation: nodes for activation, nodes in weight_matmuls(model).items()
              if not any(node.name in skip for node in nodes)}
    readers = Counter(name for node in model.graph.node for name in node.input)
    return model, groups, channel_ranges(source, list(groups), feeds), readers


def set_weight(model, readers: Counter, node, value: np.ndarray, copy_name: str) -> None:
    """Make ``value`` the weight ``node`` multiplies by: in place where ``node`` alone reads its weight,
    else as a copy named ``copy_name`` for it alone."""
    from onnx import numpy_helper

    tensor = numpy_helper.from_array(value.astype(np.float32), node.input[1])
    if readers[node.input[1]] == 1:
        next(t for t in model.graph.initializer if t.name == node.input[1]).CopyFrom(tensor)
    else:
        tensor.name = copy_name
        model.graph.initializer.append(tensor)
    node.input[1] = tensor.name


def smooth_model(source: Path, target: Path, feeds: list[dict], alpha: float = ALPHA,
                 skip: frozenset[str] = frozenset()) -> list[str]:
    """Write ``source`` to ``target`` with every weight MatMul's input smoothed (but for groups with a
    MatMul named in ``skip``), the ranges taken over ``feeds``; returns the smoothed MatMuls' names."""
    from onnx import helper, numpy_helper

    from export.ensemble import save_onnx

    model, groups, ranges, readers = measured_groups(source, feeds, skip)
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    smoothed, pending = [], {}  # pending: each smoothing Mul by its output, until it is placed
    for activation, nodes in groups.items():
        weights = [numpy_helper.to_array(initializers[node.input[1]]) for node in nodes]
        weight_range = np.max([np.abs(weight).max(axis=1) for weight in weights], axis=0)
        activation_range = ranges[activation]
        scale = np.where((activation_range > 0) & (weight_range > 0),
                         activation_range ** alpha / np.maximum(weight_range, 1e-12) ** (1 - alpha), 1.0)
        scale = np.clip(scale, 1e-5, 1e5).astype(np.float32)
        mul_name = nodes[0].name + SMOOTHED_SUFFIX
        divided = mul_name + "_output_0"
        model.graph.initializer.append(numpy_helper.from_array((1 / scale).astype(np.float32), mul_name + ".inverse"))
        pending[divided] = helper.make_node("Mul", [activation, mul_name + ".inverse"], [divided], name=mul_name)
        for node, weight in zip(nodes, weights):
            set_weight(model, readers, node, scale[:, None] * weight, node.name + SMOOTHED_SUFFIX + ".weight")
            node.input[0] = divided
            smoothed.append(node.name)
    nodes = []
    for node in model.graph.node:  # each Mul just before the first MatMul that reads it: topological order
        nodes.extend(pending.pop(name) for name in node.input if name in pending)
        nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    save_onnx(model, target)
    return sorted(smoothed)
