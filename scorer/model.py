"""An exported model directory, loaded for scoring: ONNX Runtime + tokenizers, no torch.

Everything the scorer needs comes from the directory: ``model.onnx``, ``tokenizer.json`` and
``argvalues.json`` (labels, thresholds, template, max length). Every file is checked before any
row is read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from argvalues.errors import ArgvaluesError, ModelDirError
from argvalues.model_config import ScoringConfig
from argvalues.variants import VARIANT_FILES, pick_variant

TOKENIZER_NAME = "tokenizer.json"
DEVICES = ("auto", "cpu", "cuda")


def _cuda_present() -> bool:
    # onnxruntime-gpu lists the CUDA provider even where no GPU or CUDA libraries exist, and
    # trying it then prints a long error; only try where an NVIDIA driver is loaded.
    return Path("/proc/driver/nvidia").exists() or bool(os.environ.get("ARGVALUES_FORCE_CUDA_PROBE"))


def cuda_usable() -> bool:
    """Whether ONNX Runtime can run on a GPU here."""
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers() and _cuda_present()


def _providers_for(device: str) -> list[str]:
    if device not in DEVICES:
        raise ArgvaluesError(f"--device must be one of {DEVICES}, got {device!r}")
    cuda_available = cuda_usable()
    if device == "cuda" and not cuda_available:
        raise ArgvaluesError(
            "--device cuda: ONNX Runtime's CUDA provider is not usable here (no NVIDIA driver, or "
            "onnxruntime-gpu without its CUDA libraries); use --device cpu or auto"
        )
    if device in ("cuda", "auto") and cuda_available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def load_model_config(model_dir: Path, variant: str = "auto") -> ScoringConfig:
    """Check a model directory (and a requested variant's name) and read its scoring config.

    Every file is checked before any row is read (and, for ``--engine ray``, before any worker starts).
    """
    if not model_dir.is_dir():
        raise ModelDirError(
            f"model directory {model_dir} does not exist; create one with "
            f"'argvalues export RUN_DIR --output {model_dir}' or pass --model"
        )
    if not (model_dir / TOKENIZER_NAME).is_file():
        raise ModelDirError(f"{model_dir}: missing {TOKENIZER_NAME}; re-export the model with 'argvalues export'")
    config = ScoringConfig.load(model_dir)
    if variant != "auto" and variant not in VARIANT_FILES:
        raise ArgvaluesError(f"--variant must be auto or one of {sorted(VARIANT_FILES)}, got {variant!r}")
    return config


def variant_file(model_dir: Path, config: ScoringConfig, provider: str, variant: str = "auto") -> tuple[str, Path]:
    """The variant to run on ``provider`` and its ONNX file, which must exist."""
    variant = pick_variant(config.variants, provider, variant)
    onnx_path = model_dir / VARIANT_FILES[variant]
    if not onnx_path.is_file():
        flag = {"optimized": "--optimize", "int8": "--quantize", "fp16": "--fp16"}.get(variant, "")
        raise ModelDirError(f"{model_dir}: no {variant} variant ({onnx_path.name}); "
                            f"export it with 'argvalues export {flag}'" if flag else
                            f"{model_dir}: missing {onnx_path.name}")
    return variant, onnx_path


class ScoringModel:
    """Tokenizer, template, thresholds and an ONNX Runtime session of one model directory."""

    def __init__(self, model_dir: str | Path, device: str = "auto", threads: int | None = None,
                 variant: str = "auto", parallel_calls: int | None = None):
        self.model_dir = Path(model_dir)
        self.config = load_model_config(self.model_dir, variant)
        providers = _providers_for(device)
        self.variant, self.onnx_path = variant_file(self.model_dir, self.config, providers[0], variant)
        self.tokenizer, self.pad_id = self._load_tokenizer()
        # Dynamic int8 scales activations by each batch's range, so a row's labels would depend on
        # its batch-mates (measured: 190 of 37,920 validation labels changed between batch sizes 64
        # and 16). Run it one row per call: every row then sees only itself, whatever --batch-size
        # or chunking, and no row is padded at all.
        self.rows_per_call = 1 if self.variant == "int8" else None
        # One row per call keeps few of an operator's threads busy; on the CPU such calls run side
        # by side instead, one ONNX Runtime thread each (benchmarks/README.md, "Scoring on Ray":
        # two single-threaded workers beat one two-threaded engine 1.47x on 2 cores).
        cores = threads or len(os.sched_getaffinity(0)) or 1
        if parallel_calls is None:
            parallel_calls = cores if self.rows_per_call and providers[0] == "CPUExecutionProvider" else 1
        self.parallel_calls = parallel_calls
        self._pool = None
        self.session = self._load_session(providers, 1 if self.parallel_calls > 1 else cores)
        self.provider = self.session.get_providers()[0]
        self.io_binding = self.provider == "CUDAExecutionProvider"
        self.input_names = [i.name for i in self.session.get_inputs()]
        self._check_outputs()

    @property
    def labels(self) -> list[str]:
        return self.config.labels

    @property
    def thresholds(self) -> np.ndarray:
        return np.asarray(self.config.thresholds, dtype=np.float32)

    @property
    def required_columns(self) -> list[str]:
        return self.config.required_columns

    def _load_tokenizer(self):
        from tokenizers import Tokenizer

        path = self.model_dir / TOKENIZER_NAME
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as error:  # the Rust library raises its own exception type
            raise ModelDirError(f"{path}: the tokenizer does not load ({error})") from None
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=self.config.max_length, strategy="longest_first")
        pad_id = 0
        tokenizer_config = self.model_dir / "tokenizer_config.json"
        if tokenizer_config.is_file():
            pad_token = json.loads(tokenizer_config.read_text()).get("pad_token")
            if isinstance(pad_token, dict):
                pad_token = pad_token.get("content")
            if pad_token and tokenizer.token_to_id(pad_token) is not None:
                pad_id = tokenizer.token_to_id(pad_token)
        return tokenizer, pad_id

    def _load_session(self, providers: list[str], threads: int | None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # one batch at a time: all cores on each operator, none spent on parallel branches
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = threads or len(os.sched_getaffinity(0)) or 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            return ort.InferenceSession(str(self.onnx_path), options, providers=providers)
        except Exception as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ModelDirError(f"{self.onnx_path}: not a loadable ONNX model ({first})") from None

    def _check_outputs(self) -> None:
        outputs = self.session.get_outputs()
        width = outputs[0].shape[-1] if outputs and outputs[0].shape else None
        if isinstance(width, int) and width != len(self.labels):
            raise ModelDirError(
                f"{self.model_dir}: the ONNX model outputs {width} scores but {len(self.labels)} labels are configured"
            )
        missing = {"input_ids", "attention_mask"} - set(self.input_names)
        if missing:
            raise ModelDirError(f"{self.onnx_path}: inputs {sorted(missing)} are missing")

    def encode(self, arguments: pd.DataFrame) -> list:
        text, text_pair = self.config.template.render(arguments)
        batch = list(zip(text, text_pair)) if text_pair is not None else text
        return self.tokenizer.encode_batch(batch)

    def probabilities(self, arguments: pd.DataFrame, batch_size: int = 64) -> np.ndarray:
        """Probabilities of every label for every row, in row order.

        Rows are sorted by token length and batched, each batch padded only to its longest row;
        the results go back to input order.
        """
        return self.infer(self.prepare(arguments, batch_size))

    def prepare(self, arguments: pd.DataFrame, batch_size: int = 64) -> list[tuple[np.ndarray, dict]]:
        """Tokenize and build the padded, length-sorted batches (row positions, feeds); no inference.

        Split from :meth:`infer` so a second thread can prepare the next chunk while this one runs.
        """
        batch_size = self.rows_per_call or batch_size
        encodings = self.encode(arguments)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        order = np.argsort(lengths, kind="stable")
        batches = []
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            batches.append((rows, self._feeds([encodings[i] for i in rows], int(lengths[rows].max()))))
        return batches

    def infer(self, batches: list[tuple[np.ndarray, dict]]) -> np.ndarray:
        rows = sum(len(positions) for positions, _ in batches)
        out = np.empty((rows, len(self.labels)), dtype=np.float32)
        run = self._run_bound if self.io_binding else self._run_plain
        if self.parallel_calls > 1 and len(batches) > 1:
            if self._pool is None:  # ONNX Runtime sessions take concurrent run() calls
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(self.parallel_calls, thread_name_prefix="argvalues-onnx")
            results = self._pool.map(lambda batch: run(batch[1]), batches)
        else:
            results = (run(feeds) for _, feeds in batches)
        for (positions, _), logits in zip(batches, results):
            out[positions] = 1.0 / (1.0 + np.exp(-logits.astype(np.float32)))
        return out

    def _run_plain(self, feeds: dict) -> np.ndarray:
        return self.session.run(None, feeds)[0]

    def _run_bound(self, feeds: dict) -> np.ndarray:
        """I/O binding: inputs copied to the device once, outputs left where the provider puts them
        and fetched in one copy (on CUDA this avoids ONNX Runtime's extra staging copies)."""
        binding = self.session.io_binding()
        for name, value in feeds.items():
            binding.bind_cpu_input(name, value)
        output = self.session.get_outputs()[0].name
        binding.bind_output(output, "cuda" if self.provider == "CUDAExecutionProvider" else "cpu")
        self.session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    def _feeds(self, encodings: list, width: int) -> dict:
        n = len(encodings)
        feeds = {
            "input_ids": np.full((n, width), self.pad_id, dtype=np.int64),
            "attention_mask": np.zeros((n, width), dtype=np.int64),
        }
        if "token_type_ids" in self.input_names:
            feeds["token_type_ids"] = np.zeros((n, width), dtype=np.int64)
        for row, encoding in enumerate(encodings):
            length = len(encoding.ids)
            feeds["input_ids"][row, :length] = encoding.ids
            feeds["attention_mask"][row, :length] = 1
            if "token_type_ids" in feeds:
                feeds["token_type_ids"][row, :length] = encoding.type_ids
        return feeds
