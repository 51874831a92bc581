"""The CPU-safe parts of GPU scoring: token-budget batches, which ONNX Runtime package is installed,
and why a present GPU is not used (ONNX Runtime mocked where a GPU would be needed)."""

import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from tiny_models import EXAMPLES

from argvalues.contract import read_arguments
from argvalues.errors import ArgvaluesError
from scorer import runtime
from scorer.batching import batch_bounds
from scorer.model import ScoringModel
from scorer.score import ScoreOptions, provider_line, score_files

ROOT = Path(__file__).resolve().parent.parent
ARGUMENTS = EXAMPLES / "arguments.tsv"


# ---- batches by a token budget ----

def test_token_budget_batches_hold_more_short_rows_than_long_ones():
    lengths = np.array([4] * 75 + [50] * 20 + [350] * 3)
    bounds = batch_bounds(lengths, batch_size=64, batch_tokens=400)
    assert [start for start, _ in bounds] == [0] + [end for _, end in bounds[:-1]]  # contiguous, in order
    assert bounds[-1][1] == len(lengths)
    for start, end in bounds:
        assert (end - start) * lengths[end - 1] <= 400 or end - start == 1  # within budget, or one long row
    sizes = [end - start for start, end in bounds]
    assert sizes == [75, 8, 8, 4, 1, 1, 1]  # 75 short rows in one call, 8 of 50 tokens; a 350-token row alone
    assert batch_bounds(lengths, batch_size=64) == [(0, 64), (64, 98)]  # no budget: --batch-size rows


def test_token_budget_does_not_change_the_output(tiny_exported, tmp_path):
    outputs = []
    for tokens in (None, 64, 100_000):
        out = tmp_path / f"{tokens}.tsv"
        score_files([str(ARGUMENTS)], str(out), ScoreOptions(model_dir=str(tiny_exported), batch_tokens=tokens,
                                                              probabilities=True, chunk_rows=25))
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1] == outputs[2]
    model = ScoringModel(tiny_exported, device="cpu", batch_tokens=64)
    batches = model.prepare(read_arguments(ARGUMENTS))
    assert len({len(rows) for rows, _ in batches}) > 1  # rows per call vary with length
    assert all(feeds["input_ids"].size <= 64 or len(rows) == 1 for rows, feeds in batches)


def test_cpu_default_is_rows_per_batch(tiny_exported):
    assert ScoringModel(tiny_exported, device="cpu").batch_tokens is None


# ---- which ONNX Runtime package ----

def _dist_info(folder: Path, name: str, version: str = "1.31.1") -> None:
    info = folder / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def test_both_runtime_packages_in_one_directory_are_refused(tmp_path):
    both, cpu, gpu = tmp_path / "both", tmp_path / "cpu", tmp_path / "gpu"
    _dist_info(both, "onnxruntime")
    _dist_info(both, "onnxruntime-gpu")
    _dist_info(cpu, "onnxruntime")
    _dist_info(gpu, "onnxruntime-gpu")
    with pytest.raises(ArgvaluesError, match="onnxruntime and onnxruntime-gpu are both installed") as error:
        runtime.check_one_runtime([str(both)])
    assert "pip uninstall -y onnxruntime onnxruntime-gpu" in str(error.value)
    runtime.check_one_runtime([str(cpu)])
    runtime.check_one_runtime([str(cpu), str(gpu)])  # one shadows the other: one build is imported whole


def test_score_refuses_both_runtime_packages_in_one_line(tiny_exported, tmp_path):
    _dist_info(tmp_path, "onnxruntime")
    _dist_info(tmp_path, "onnxruntime-gpu")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    result = subprocess.run([sys.executable, "-c", "from scorer.cli import main; main()", "--model",
                             str(tiny_exported), str(ARGUMENTS), "-o", str(tmp_path / "out.tsv")],
                            check=False, capture_output=True, text=True, env=env, cwd=ROOT)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "are both installed in" in result.stderr
    assert not (tmp_path / "out.tsv").exists()


# ---- why a present GPU is not used ----

@pytest.fixture
def fake_onnxruntime(monkeypatch):
    """An onnxruntime module whose providers, build and library loading the test sets."""
    module = types.ModuleType("onnxruntime")
    module.__version__ = "1.31.1"
    module.providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    module.get_available_providers = lambda: module.providers
    module.failures = []
    module.preload_dlls = lambda cuda=True, cudnn=True: [print(f"Failed to load /x/{name}: cannot open") for name
                                                         in module.failures]
    info = types.ModuleType("onnxruntime.capi.build_and_package_info")
    info.package_name, info.__version__, info.cuda_version = "onnxruntime-gpu", "1.31.1", "13.0"
    monkeypatch.setitem(sys.modules, "onnxruntime", module)
    monkeypatch.setitem(sys.modules, "onnxruntime.capi", types.ModuleType("onnxruntime.capi"))
    monkeypatch.setitem(sys.modules, "onnxruntime.capi.build_and_package_info", info)
    monkeypatch.setattr(runtime, "gpu_present", lambda: True)
    monkeypatch.setattr(runtime, "driver_cuda_version", lambda: (13, 0))
    runtime.cuda_check.cache_clear()
    yield module
    runtime.cuda_check.cache_clear()


def test_no_gpu_means_cpu_without_a_reason(monkeypatch):
    monkeypatch.setattr(runtime, "gpu_present", lambda: False)
    runtime.cuda_check.cache_clear()
    assert runtime.cuda_check() == runtime.CudaCheck(False, None)
    runtime.cuda_check.cache_clear()


def test_cuda_usable_when_driver_and_libraries_are_there(fake_onnxruntime, capsys):
    assert runtime.cuda_check() == runtime.CudaCheck(True)
    assert capsys.readouterr().out == ""  # preload_dlls' prints never reach standard output (the scores)


def test_cpu_package_on_a_gpu_machine(fake_onnxruntime):
    fake_onnxruntime.providers = ["CPUExecutionProvider"]
    check = runtime.cuda_check()
    assert not check.usable and "has no CUDA provider" in check.reason and "onnxruntime-gpu[cuda,cudnn]" in check.reason


def test_driver_too_old(fake_onnxruntime, monkeypatch):
    monkeypatch.setattr(runtime, "driver_cuda_version", lambda: (12, 8))
    check = runtime.cuda_check()
    assert not check.usable
    assert "supports CUDA up to 12.8" in check.reason and "needs CUDA 13.0" in check.reason


def test_missing_cuda_libraries_are_named(fake_onnxruntime, capsys):
    fake_onnxruntime.failures = ["libcudnn.so.9", "libcublasLt.so.13"]
    check = runtime.cuda_check()
    assert not check.usable and "libcudnn.so.9, libcublasLt.so.13" in check.reason
    assert "pip install 'onnxruntime-gpu[cuda,cudnn]==1.31.1'" in check.reason
    assert capsys.readouterr().out == ""


def test_score_says_why_the_gpu_is_not_used(tiny_exported, monkeypatch):
    import scorer.model

    monkeypatch.setattr(scorer.model, "cuda_check", lambda: runtime.CudaCheck(False, "the driver is too old"))
    model = ScoringModel(tiny_exported, device="auto")
    assert model.provider == "CPUExecutionProvider"
    line = provider_line(model)
    assert line.startswith("scoring with CPUExecutionProvider") and line.endswith("GPU not used: the driver is too old")
    with pytest.raises(ArgvaluesError, match="not usable here: the driver is too old"):
        ScoringModel(tiny_exported, device="cuda")
    assert "GPU not used" not in provider_line(ScoringModel(tiny_exported, device="cpu"))


def test_score_command_names_the_reason_in_one_line(tiny_exported, tmp_path):
    """A GPU claimed present (ARGVALUES_FORCE_CUDA_PROBE) on this GPU-less machine: whichever ONNX
    Runtime package is installed, `score` runs on the CPU and says in one line why not on the GPU."""
    env = {**os.environ, "ARGVALUES_FORCE_CUDA_PROBE": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-c", "from scorer.cli import main; main()", "--model", str(tiny_exported),
               str(ARGUMENTS), "-o", str(tmp_path / "out.tsv")]
    result = subprocess.run(command, check=False, capture_output=True, text=True, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("scoring with")]
    assert "CPUExecutionProvider" in line and "; GPU not used: " in line
    refused = subprocess.run(command + ["--device", "cuda"], check=False, capture_output=True, text=True, env=env,
                             cwd=ROOT)
    assert refused.returncode == 1 and "not usable here: " in refused.stderr
