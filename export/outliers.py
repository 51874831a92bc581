"""Outlier channels split off into fp32 (the mixed-precision decomposition of LLM.int8(), Dettmers
et al., 2022, with the channels chosen once at calibration) on an ONNX graph.

A MatMul ``X @ W`` equals ``(X * m) @ (m[:, None] * W) + X[:, O] @ W[O]`` for a channel mask ``m``
that is 0 on the channels ``O`` and 1 elsewhere. int8 quantizes ``X`` with one scale per tensor; the
layer norms' and GELUs' outputs of BERT-like encoders carry one to three channels whose range is
4 to 15 times the median channel's, and these take most of the 256 steps. Split off, they are
multiplied in fp32 (a few channels: a small product), and the quantized product sees the rest.
Unlike smoothing (export/smoothing.py) this leaves every weight as it was, so AVX2's uint8-by-int8
products do not saturate more than they did, and it works on a GELU's output too.

Not export's recipe: measured side by side with it (benchmarks/int8_recipes.py; benchmarks/README.md,
"Outlier channels split off"), every split recipe either held fewer labels at about smoothing's speed
or held fewer than 99.5% of them where it was faster; as whole processes the best (the GELU outputs
split instead of kept fp32) was 1% faster. The benchmark keeps it for other CPUs and models.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from export.smoothing import measured_groups, set_weight

#: A channel is an outlier when its max |x| over the calibration rows exceeds this multiple of the
#: median channel's. On the default recipe's student (AVX2, 31,520 test-set labels as fp32's, every
#: layer quantized): 4x 99.26% of labels at 2.06x fp32's speed, 3x 99.33% at 2.04x, 2x 99.40% at
#: 1.91x, 1.5x 99.52% at 1.50x (benchmarks/README.md, "Outlier channels split off").
OUTLIER_RATIO = 2.0
OUTLIER_SUFFIX = "/Outliers"


def outlier_channels(ranges: np.ndarray, ratio: float = OUTLIER_RATIO) -> np.ndarray:
    """The channels whose range exceeds ``ratio`` times the median channel's, in order."""
    return np.flatnonzero(ranges > ratio * np.median(ranges))


def split_outliers(source: Path, target: Path, feeds: list[dict], ratio: float = OUTLIER_RATIO,
                   skip: frozenset[str] = frozenset()) -> list[str]:
    """Write ``source`` to ``target`` with each weight MatMul's outlier input channels (measured over
    ``feeds``) multiplied in fp32 beside it, for every group of MatMuls sharing an input but groups
    with a MatMul named in ``skip``; returns the names of the fp32 MatMuls it added (a quantizer
    must leave them as they are)."""
    from onnx import helper, numpy_helper

    from export.ensemble import save_onnx

    model, groups, ranges, readers = measured_groups(source, feeds, skip)
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    added, before, after = [], {}, {}  # nodes to place before a MatMul (by its name) and after it
    for activation, nodes in groups.items():
        channels = outlier_channels(ranges[activation], ratio)
        if not len(channels):
            continue
        prefix = nodes[0].name + OUTLIER_SUFFIX
        mask = np.ones(ranges[activation].shape, dtype=np.float32)
        mask[channels] = 0
        model.graph.initializer.extend([numpy_helper.from_array(mask, prefix + ".mask"),
                                        numpy_helper.from_array(channels.astype(np.int64), prefix + ".channels")])
        masked, picked = prefix + "/masked", prefix + "/picked"
        before[nodes[0].name] = [
            helper.make_node("Mul", [activation, prefix + ".mask"], [masked], name=prefix + "/Mul"),
            helper.make_node("Gather", [activation, prefix + ".channels"], [picked], name=prefix + "/Gather", axis=-1)]
        for node in nodes:
            weight = numpy_helper.to_array(initializers[node.input[1]])
            outlier_weight = node.name + OUTLIER_SUFFIX + ".outlier_weight"
            model.graph.initializer.append(numpy_helper.from_array(weight[channels], outlier_weight))
            set_weight(model, readers, node, weight * mask[:, None], node.name + OUTLIER_SUFFIX + ".weight")
            output, inlier_output = node.output[0], node.name + OUTLIER_SUFFIX + "/inliers"
            node.input[0], node.output[0] = masked, inlier_output
            fp32_name = node.name + OUTLIER_SUFFIX + "/MatMul"
            after[node.name] = [
                helper.make_node("MatMul", [picked, outlier_weight], [fp32_name + "_output_0"], name=fp32_name),
                helper.make_node("Add", [inlier_output, fp32_name + "_output_0"], [output], name=prefix + "/Add" + node.name)]
            added.append(fp32_name)
    nodes = []
    for node in model.graph.node:  # topological order: the mask and gather just before their first reader
        nodes.extend(before.pop(node.name, []))
        nodes.append(node)
        nodes.extend(after.pop(node.name, []))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    save_onnx(model, target)
    return sorted(added)
