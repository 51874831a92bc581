"""Which ONNX Runtime is installed, and whether its CUDA provider can run here (and if not, why).

ONNX Runtime ships as several packages that all install the same ``onnxruntime`` module:
``onnxruntime`` (CPU, every platform; what ``pip install argvalues`` brings) and
``onnxruntime-gpu`` (CUDA; what ``pip install 'argvalues[gpu]'`` brings, with the CUDA and cuDNN
libraries as its ``[cuda,cudnn]`` extras). Two of them in one directory overwrite each other's
files, and which build then loads depends on the order pip happened to install them in, so the
scorer refuses that (:func:`check_one_runtime`) before importing the module.

:func:`cuda_check` decides whether the CUDA provider is usable and, when a GPU is present but
cannot be used, says why in one line: the CPU package installed, a driver too old for the CUDA
version the GPU package was built for, or CUDA/cuDNN libraries missing (``preload_dlls`` loads
them from the ``nvidia-*`` packages of the environment).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import io
import os
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from argvalues.errors import ArgvaluesError

#: Packages that install the ``onnxruntime`` module (canonical names).
RUNTIME_PACKAGES = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino",
                    "onnxruntime-qnn", "onnxruntime-training")
GPU_INSTALL = "pip install 'argvalues[gpu]'"
SWITCH_TO_GPU = "pip uninstall -y onnxruntime onnxruntime-gpu && pip install 'onnxruntime-gpu[cuda,cudnn]'"
SWITCH_TO_CPU = "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_packages(paths: list[str] | None = None) -> dict[str, list[str]]:
    """Each installed directory (a ``site-packages``) -> the ONNX Runtime packages installed in it."""
    found: dict[str, list[str]] = {}
    for distribution in metadata.distributions(**({"path": paths} if paths is not None else {})):
        name = _canonical(distribution.metadata["Name"] or "")
        if name in RUNTIME_PACKAGES:
            where = str(Path(str(distribution.locate_file(""))).resolve())
            if name not in found.setdefault(where, []):
                found[where].append(name)
    return found


def check_one_runtime(paths: list[str] | None = None) -> None:
    """Refuse an environment where two ONNX Runtime packages share one directory.

    A package in a directory later on ``sys.path`` is shadowed whole by the first and does no harm
    (a virtualenv over the system's packages); two in the same directory are a mix of both builds.
    """
    for where, names in runtime_packages(paths).items():
        if len(names) > 1:
            raise ArgvaluesError(
                f"{' and '.join(sorted(names))} are both installed in {where}; they overwrite each other's files. "
                f"Keep one - GPU: {SWITCH_TO_GPU}; CPU: {SWITCH_TO_CPU}")


def gpu_present() -> bool:
    """An NVIDIA driver is loaded (a GPU to try). ``ARGVALUES_FORCE_CUDA_PROBE`` claims one (tests)."""
    return Path("/proc/driver/nvidia").exists() or bool(os.environ.get("ARGVALUES_FORCE_CUDA_PROBE"))


def driver_cuda_version() -> tuple[int, int] | None:
    """The newest CUDA version the loaded NVIDIA driver supports, from libcuda; None where it does not load."""
    try:
        libcuda = ctypes.CDLL("nvcuda.dll" if os.name == "nt" else "libcuda.so.1")
        version = ctypes.c_int(0)
        if libcuda.cuDriverGetVersion(ctypes.byref(version)) != 0:
            return None
    except (OSError, AttributeError):
        return None
    return version.value // 1000, (version.value % 1000) // 10


def _build_info(ort) -> tuple[str, str, str | None]:
    """(package, version, CUDA version it was built for) of the imported ONNX Runtime."""
    try:
        from importlib import import_module

        info = import_module(f"{ort.__name__}.capi.build_and_package_info")
    except ImportError:
        return "onnxruntime", getattr(ort, "__version__", "?"), None
    return (getattr(info, "package_name", "onnxruntime"), getattr(info, "__version__", "?"),
            getattr(info, "cuda_version", None) or None)


def _preload_failures(ort) -> list[str]:
    """Load the CUDA and cuDNN libraries of the environment's nvidia-* packages (what
    ``onnxruntime-gpu[cuda,cudnn]`` installs); the names of those that did not load.

    ``preload_dlls`` reports failures by printing them; they are captured here (standard output
    may be the scores)."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return []
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        try:
            preload(cuda=True, cudnn=True)
        except Exception as error:  # an unusual install layout: let the session say what is missing
            print(f"Failed to load libraries: {error}")
    return re.findall(r"Failed to load (?:\S*/)?(\S+?):", printed.getvalue())


@dataclass(frozen=True)
class CudaCheck:
    usable: bool
    #: Why a present GPU cannot be used (one line); None when usable or when there is no GPU at all.
    reason: str | None = None


@functools.lru_cache(maxsize=1)
def cuda_check() -> CudaCheck:
    """Whether ONNX Runtime's CUDA provider can run here; loads the CUDA libraries when it can."""
    if not gpu_present():
        return CudaCheck(False)
    import onnxruntime as ort

    package, version, built_for = _build_info(ort)
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return CudaCheck(False, f"a GPU is present, but {package} {version} has no CUDA provider; "
                                f"for the GPU: {SWITCH_TO_GPU} (docs/gpu.md)")
    driver = driver_cuda_version()
    if driver is None:
        return CudaCheck(False, "a GPU is present, but the NVIDIA driver's library (libcuda.so.1) does not load")
    if built_for:
        needed = tuple(int(part) for part in built_for.split(".")[:2])
        if driver < needed:
            return CudaCheck(False, f"the NVIDIA driver supports CUDA up to {driver[0]}.{driver[1]}, but {package} "
                                    f"{version} needs CUDA {built_for}: update the driver, or install an "
                                    f"onnxruntime-gpu built for CUDA {driver[0]}")
    missing = _preload_failures(ort)
    if missing:
        return CudaCheck(False, f"CUDA libraries missing for {package} {version}: {', '.join(missing)}; "
                                f"install them with: pip install 'onnxruntime-gpu[cuda,cudnn]=={version}'")
    return CudaCheck(True)
