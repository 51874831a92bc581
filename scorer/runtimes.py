"""OpenVINO behind the scorer: the ``bf16`` variant (``pip install 'argvalues[openvino]'``).

OpenVINO reads the model directory's ``model.onnx`` as it is and runs it at bfloat16 on a CPU
with AMX-BF16 or AVX512-BF16. Its results for a row do not depend on how many rows share the
call, but they do depend on padding (a row padded by 5 tokens moved by up to 4e-3 in a measured
case): the scorer therefore feeds it batches of rows of one token length only, which makes every
row's result independent of ``--batch-size`` and chunking, exactly.

Several calls run at once (OpenVINO's throughput mode picks how many streams the cores take),
so the small batches of equal-length rows keep the cores busy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from argvalues.errors import ArgvaluesError, ModelDirError

OPENVINO_PROVIDER = "OpenVINO CPU (bf16)"


class OpenVinoSession:
    """A compiled OpenVINO model with the few things :class:`scorer.model.ScoringModel` asks of a session."""

    def __init__(self, onnx_path: Path, threads: int | None = None):
        try:
            import openvino
        except ImportError:
            raise ArgvaluesError("--variant bf16 needs OpenVINO: pip install 'argvalues[openvino]'") from None
        core = openvino.Core()
        config = {"INFERENCE_PRECISION_HINT": "bf16", "PERFORMANCE_HINT": "THROUGHPUT"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        try:
            self.compiled = core.compile_model(core.read_model(str(onnx_path)), "CPU", config)
        except Exception as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ModelDirError(f"{onnx_path}: OpenVINO cannot load it ({first})") from None
        self.input_names = [port.get_any_name() for port in self.compiled.inputs]
        self.output_width = self.compiled.outputs[0].get_partial_shape()[-1]
        count = max(1, int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        self.requests = [self.compiled.create_infer_request() for _ in range(count)]

    def run_batches(self, feeds: list[dict]) -> list[np.ndarray]:
        """Logits of each batch, the batches run side by side in OpenVINO's infer requests.

        Round robin over the requests, waited for in turn: no Python callback runs on OpenVINO's
        threads (a callback needs the GIL, and a measured export hung when a queue with one was freed).
        """
        results: list[np.ndarray | None] = [None] * len(feeds)
        running: list[int | None] = [None] * len(self.requests)

        def collect(slot: int) -> None:
            if running[slot] is not None:
                self.requests[slot].wait()
                results[running[slot]] = self.requests[slot].get_output_tensor(0).data.copy()
                running[slot] = None

        for position, batch in enumerate(feeds):
            slot = position % len(self.requests)
            collect(slot)
            self.requests[slot].start_async({name: batch[name] for name in self.input_names})
            running[slot] = position
        for slot in range(len(self.requests)):
            collect(slot)
        return results
